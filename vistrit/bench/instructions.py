"""The coordinator's instructions per task: a figure that does not depend on what else the
machine is doing (``python -m vistrit bench instructions``, where valgrind is installed).

Time and CPU time move with everything else a shared machine runs: the same build's
coordinator CPU per W1 task came out anywhere from 99 to 110 µs in one day. The
number of instructions it executes for the same work hardly moves, so a change of a few
per cent shows in one run of each build instead of a dozen. The coordinator runs under
valgrind's callgrind, which counts every instruction of the process (and runs it some
twenty times slower); counting is off while it starts and warms up, on for the W1 tasks,
dumped, on again for the W2 round trips, dumped again (``callgrind_control``). The
workers and the client run as usual.

What it does not say: how long anything takes. Instructions differ in cost (a cache miss,
a system call's time in the kernel, a wait for the other core are not counted), and
under callgrind the coordinator's threads take turns, so its batches are larger than at
full speed. Use it to compare two builds on one machine, with the same Python.

Nothing prints; figures are returned. Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from vistrit.bench.base import WORKER_OPTIONS, Figures, round_trips, w1_seconds
from vistrit.client import VistritClient
from vistrit.demo import ProcessGroup, wait_for_workers

HOW_TO_INSTALL = "install valgrind (Debian: apt-get install valgrind)"
#: How long the coordinator may take to start under callgrind, and a dump to be written.
START_TIMEOUT = 120.0
DUMP_TIMEOUT = 60.0


def available() -> bool:
    """Are valgrind and its callgrind_control on this machine?"""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def instructions(tasks: int = 2_000, trips: int = 200, workers: int = 2) -> Figures:
    """The coordinator's instructions per W1 task (*tasks* echo tasks at once, on
    *workers* one-slot workers) and per W2 round trip (*trips* of them)."""
    if not available():
        raise RuntimeError(f"bench instructions needs valgrind: {HOW_TO_INSTALL}")
    group = ProcessGroup()
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        under = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",  # nothing counted (and full speed) until switched on
            f"--callgrind-out-file={out / 'callgrind.out'}",
        )
        try:
            process, address = group.start_coordinator(under=under, timeout=START_TIMEOUT)
            for number in range(workers):
                options = ("--slots", "1", *WORKER_OPTIONS)
                group.start_worker(address, f"bench-{number + 1}", *options)
            with VistritClient(address, request_timeout=START_TIMEOUT) as client:
                wait_for_workers(client, workers)
                w1_seconds(client, 300, warm=False)  # warm: every path taken once
                round_trips(client, 20, warm=0)
                _count(process.pid, True)
                w1_seconds(client, tasks, warm=False)
                w1 = _dump(process.pid, out, 1)
                _count(process.pid, True)
                round_trips(client, trips, warm=0)
                w2 = _dump(process.pid, out, 2)
        finally:
            group.stop_all()
    figures = {
        "coordinator_instructions_per_w1_task": w1 / tasks,
        "coordinator_instructions_per_w2_round_trip": w2 / trips,
    }
    return Figures("instructions", figures, {"tasks": tasks, "round_trips": trips})


def _count(pid: int, on: bool) -> None:
    """Switch callgrind's counting in process *pid* on or off."""
    command = ["callgrind_control", "--instr=on" if on else "--instr=off", str(pid)]
    subprocess.run(command, check=True, capture_output=True, timeout=DUMP_TIMEOUT)


def _dump(pid: int, out: Path, part: int) -> int:
    """Stop counting, have callgrind write what it counted since the last dump, and
    return that many instructions (from the dump's ``totals:`` line)."""
    _count(pid, False)
    subprocess.run(
        ["callgrind_control", "--dump", str(pid)], check=True, capture_output=True,
        timeout=DUMP_TIMEOUT,
    )  # fmt: skip
    path = out / f"callgrind.out.{part}"
    deadline = time.monotonic() + DUMP_TIMEOUT
    while time.monotonic() < deadline:
        total = _totals(path)
        if total is not None:
            return total
        time.sleep(0.05)  # the dump is written by the profiled process, after the request
    raise RuntimeError(f"callgrind wrote no dump {path.name} within {DUMP_TIMEOUT:g} s")


def _totals(path: Path) -> int | None:
    """The instructions a callgrind dump counted, or None if it is not (wholly) written."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return None


__all__ = ["HOW_TO_INSTALL", "available", "instructions"]
