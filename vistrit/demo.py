"""``python -m vistrit demo``: a real cluster on this machine doing real work, then gone.

It starts a coordinator and workers as separate processes (``python -m vistrit
coordinator`` and ``python -m vistrit worker``, exactly as you would by hand), connects a
:class:`~vistrit.client.VistritClient`, and runs a small workload over a text that ships
with Vistrit: a word count and a line count as map/reduce (one map task per paragraph, a
reduce task that depends on them all), the SHA-256 of the whole text, and some arithmetic.
It reports progress as tasks finish and which worker ran what, checks every answer
against one computed locally, and finally stops every process it started.

Nothing here prints: progress goes to the ``report`` callback the CLI passes in.

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import collections
import hashlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from vistrit.client import TaskFuture, VistritClient

#: How long each process may take to start, and to stop, before it is killed.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port of 127.0.0.1 free right now (for nodes that must know each other's address
    before they start, as the coordinators of a cluster do)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample_text() -> str:
    """The text that ships with Vistrit, which the demo counts."""
    return resources.files("vistrit").joinpath("data/notes-on-distribution.txt").read_text("utf-8")


class ProcessGroup:
    """Processes started by the demo, each stopped (and if need be killed) at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(
        self, *args: str, stderr: Path | None = None, under: Sequence[str] = ()
    ) -> subprocess.Popen[str]:
        """``python -m vistrit ARGS`` (run by the command *under*, if given: a profiler);
        its log (stderr) goes to the file *stderr*, or nowhere."""
        with open(stderr or os.devnull, "a") as log:
            process = subprocess.Popen(
                [*under, sys.executable, "-m", "vistrit", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.processes.append(process)
        return process

    def first_line(
        self, process: subprocess.Popen[str], what: str, timeout: float = START_TIMEOUT
    ) -> str:
        """The first line the process prints, within *timeout* seconds."""
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the {what} did not start within {timeout:g} s") from None
        if not line:
            raise RuntimeError(f"the {what} exited with code {process.wait(STOP_TIMEOUT)}")
        return line.strip()

    def start_coordinator(
        self, *options: str, under: Sequence[str] = (), timeout: float = START_TIMEOUT
    ) -> tuple[subprocess.Popen[str], str]:
        """A coordinator on a free port of 127.0.0.1, with extra *options* (run by the
        command *under*, if given): the process and its address, once it listens, within
        *timeout* seconds. (Its log goes nowhere: stderr is discarded.)"""
        process = self.start("coordinator", "--bind", "127.0.0.1:0", *options, under=under)
        address = self.first_line(process, "coordinator", timeout).rsplit(" ", 1)[-1]
        return process, address

    def start_coordinators(
        self, count: int, *options: str, log_dir: Path | None = None, data: bool = False
    ) -> dict[int, tuple[subprocess.Popen[str], str]]:
        """*count* coordinators of one cluster (ids 1 to *count*) on free ports of 127.0.0.1,
        started at once: ``{id: (process, address)}``, once each listens. With *log_dir*,
        each one's log goes to ``coordinator-ID.log`` there, and with *data* too, each
        keeps its journal in ``data-ID`` there."""
        addresses = {rank: f"127.0.0.1:{free_port()}" for rank in range(1, count + 1)}
        peers = ",".join(f"{rank}@{address}" for rank, address in addresses.items())
        started = {}
        for rank, address in addresses.items():
            log = None if log_dir is None else log_dir / f"coordinator-{rank}.log"
            extra = ("--data-dir", str(log_dir / f"data-{rank}")) if data and log_dir else ()
            process = self.start_coordinator_at(address, rank, peers, *options, *extra, log=log)
            started[rank] = (process, address)
        for rank, (process, _) in started.items():
            self.first_line(process, f"coordinator {rank}")
        return started

    def start_coordinator_at(
        self, address: str, rank: int, peers: str, *options: str, log: Path | None = None
    ) -> subprocess.Popen[str]:
        """One coordinator of a cluster (not waiting for it to listen: see ``first_line``)."""
        args = ("coordinator", "--bind", address, "--id", str(rank), "--peers", peers)
        if log is None:
            return self.start(*args, *options)
        return self.start("--log-level", "INFO", *args, *options, stderr=log)

    def start_worker(self, address: str, name: str, *args: str) -> subprocess.Popen[str]:
        """A worker named *name* for the coordinator at *address*, once it has joined;
        *args* are extra worker options."""
        process = self.start("worker", "--coordinator", address, "--name", name, *args)
        self.first_line(process, f"worker {name}")
        return process

    def stop_all(self) -> None:
        """Stop every process started, by its process id, and wait for each."""
        for process in reversed(self.processes):  # workers first, the coordinator last
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def run(
    workers: int = 2,
    report: Callable[[str], None] = lambda line: None,
    keep: Callable[[], object] | None = None,
) -> bool:
    """Run the demo; returns True if every answer matched the local computation. The
    coordinator serves its dashboard, whose link is reported; with *keep*, the cluster
    stays up after the work, until *keep* returns (the CLI's ``--keep``: until Ctrl-C)."""
    text = sample_text()
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    group = ProcessGroup()
    try:
        process, address = group.start_coordinator("--dashboard", "127.0.0.1:0")
        report(f"coordinator listening on {address}")
        url = group.first_line(process, "dashboard").rsplit(" ", 1)[-1]
        report(f"dashboard (open it in a browser): {url}")
        for number in range(1, workers + 1):
            group.start_worker(address, f"demo-worker-{number}", "--slots", "1")
        with VistritClient(address) as client:
            wait_for_workers(client, workers)
            report(
                f"{workers} workers joined: " + ", ".join(w.name or "?" for w in client.workers())
            )
            ok = _workload(client, text, paragraphs, report)
        if keep is not None:
            report("the cluster stays up for the dashboard: Ctrl-C stops it")
            keep()
        return ok
    finally:
        group.stop_all()
        report("stopped the coordinator and the workers")


def wait_for_workers(client: VistritClient, count: int) -> None:
    """Wait (at most START_TIMEOUT) until *count* workers are listed."""
    deadline = time.monotonic() + START_TIMEOUT
    while len(client.workers()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(client.workers())} of {count} workers joined")
        time.sleep(0.05)


def _workload(
    client: VistritClient, text: str, paragraphs: list[str], report: Callable[[str], None]
) -> bool:
    report(f"text: {len(text):,} characters in {len(paragraphs)} paragraphs")
    started = time.monotonic()
    words = client.map("word_count", paragraphs, name="count words")
    total_words = client.submit_reduce("sum", after=words, name="add word counts")
    lines = client.map("line_count", paragraphs, name="count lines")
    total_lines = client.submit_reduce("sum", after=lines, name="add line counts")
    digest = client.submit("sha256", text, name="fingerprint")
    average = client.submit_compute(f"{len(text.split())} / {len(paragraphs)}")
    everything: list[TaskFuture] = [*words, total_words, *lines, total_lines, digest, average]
    for done, _ in enumerate(client.as_completed(everything, timeout=60), 1):
        if done % 6 == 0 or done == len(everything):
            report(f"  {done}/{len(everything)} tasks done")
    elapsed = time.monotonic() - started
    checks = [
        ("words", total_words.result(), str(len(text.split()))),
        ("lines", total_lines.result(), str(sum(len(p.splitlines()) for p in paragraphs))),
        ("sha256", digest.result(), hashlib.sha256(text.encode()).hexdigest()),
        ("words per paragraph", average.result(), _ratio(len(text.split()), len(paragraphs))),
    ]
    for label, got, expected in checks:
        verdict = "ok" if got == expected else f"MISMATCH (expected {expected})"
        report(f"{label}: {got}  [{verdict}]")
    names = {w.id: w.name or str(w.id)[:8] for w in client.workers()}
    ran = collections.Counter(_runner(client, f, names) for f in everything)
    report("tasks per worker: " + ", ".join(f"{n}: {c}" for n, c in sorted(ran.items())))
    report(f"{len(everything)} tasks in {elapsed:.2f} s")
    return all(got == expected for _, got, expected in checks)


def _runner(client: VistritClient, future: TaskFuture, names: dict[uuid.UUID, str]) -> str:
    worker = client.status(future.task_id).worker
    return names.get(worker, "?") if worker is not None else "?"


def _ratio(a: int, b: int) -> str:
    value = a / b
    return str(int(value)) if value.is_integer() else str(value)
