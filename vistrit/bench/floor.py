"""This machine's floor: what it gives before Vistrit does anything, measured in the same run.

A figure like "4,000 tasks per second" means little without the machine it came from, and
a shared machine changes from hour to hour. So ``python -m vistrit bench`` first measures
the floor, and prints every figure beside it and as a ratio to it; the ratios are what
another machine (or another hour) should reproduce.

* **loopback** - a second process echoes over TCP on 127.0.0.1: the p50 of 16-byte round
  trips (the least any request and answer can cost here), and how fast 8 MiB go there
  and back (MB/s of data, counted once, as W4 counts it).
* **frames** - the bare cost of a frame with no Vistrit code at all: ``struct`` packs a
  10-byte header and ``zlib.crc32`` checks a 16-byte payload, frames per second.
* **skeleton** - W2's processes and threads passing 16 bytes around, with no Vistrit code
  (:mod:`vistrit.bench.skeleton`): what the design's shape costs a round trip here.

:data:`AGAINST` says which floor each workload's figure is divided by. Nothing prints;
figures are returned. Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

from vistrit.bench.skeleton import skeleton

#: How each workload's headline figure compares with the floor: the workload's figure, the
#: floor's figure it is divided by, and what the ratio says (one or more such comparisons).
AGAINST = {
    "throughput": [("tasks_per_s", "round_trips_per_s", "tasks per bare round trip")],
    "latency": [
        ("p50_us", "round_trip_p50_us", "bare round trips per task"),
        ("p50_us", "skeleton_round_trip_p50_us", "skeleton round trips per task"),
    ],
    "payload": [("mb_per_s", "bulk_mb_per_s", "of bare loopback bandwidth")],
}

_HEADER = struct.Struct(">4sBBI")
_CHUNK = 1024 * 1024


def echo_server(fd: int) -> None:
    """Run in the helper process: on the listening socket *fd* (made by the parent, so
    nothing has to say which port), echo one connection until it closes."""
    with socket.socket(fileno=fd) as server:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(_CHUNK):
                conn.sendall(data)


def loopback(round_trips: int = 2_000, bulk_bytes: int = 8 * 1024 * 1024) -> dict[str, float]:
    """Round trips of 16 bytes, and 8 MiB there and back, with an echo process."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        fd = server.fileno()
        code = f"from vistrit.bench.floor import echo_server; echo_server({fd})"
        helper = subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,))
        address = server.getsockname()
    try:
        with socket.create_connection(address, timeout=30) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            samples = []
            message = b"0123456789abcdef"
            for _ in range(50):  # the first waits for the helper to start: not counted
                conn.sendall(message)
                _receive(conn, len(message))
            for _ in range(round_trips):
                started = time.perf_counter()
                conn.sendall(message)
                _receive(conn, len(message))
                samples.append(time.perf_counter() - started)
            bulk = bytes(bulk_bytes)
            started = time.perf_counter()
            for _ in range(3):  # sent by a thread while this one reads the echo (full duplex)
                sender = threading.Thread(target=conn.sendall, args=(bulk,), daemon=True)
                sender.start()
                _receive(conn, bulk_bytes)
                sender.join(30)
            bulk_seconds = (time.perf_counter() - started) / 3
    finally:
        helper.kill()
        helper.wait(10)
    return {
        "round_trip_p50_us": statistics.median(samples) * 1e6,
        "round_trips_per_s": len(samples) / sum(samples),
        "bulk_mb_per_s": bulk_bytes / bulk_seconds / 1e6,
    }


def _receive(conn: socket.socket, size: int) -> None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = conn.recv_into(view[got:], min(size - got, _CHUNK))
        if not count:
            raise ConnectionError("the echo process closed the connection")
        got += count


def frames(seconds: float = 0.2) -> dict[str, float]:
    """Bare frames per second: a header packed and a 16-byte payload's CRC-32 computed."""
    payload = b"0123456789abcdef"
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            _HEADER.pack(b"VIST", 1, 3, len(payload))
            zlib.crc32(payload)
        count += 1000
    return {"bare_frames_per_s": count / (time.perf_counter() - started)}


def measure() -> dict[str, float]:
    """The floor: loopback, bare frames and W2's skeleton (each the median of three)."""
    runs = [{**loopback(), **frames(), **skeleton()} for _ in range(3)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def ratio(workload: str, figures: dict[str, float], floor: dict[str, float]) -> str | None:
    """The workload's headline figure as a ratio to its floor, in words (None: no floor)."""
    said = []
    for mine, theirs, meaning in AGAINST.get(workload, []):
        if mine in figures and floor.get(theirs):
            value = figures[mine] / floor[theirs]
            said.append(
                f"{value:.0%} {meaning}" if workload == "payload" else f"{value:.2f} {meaning}"
            )
    return "; ".join(said) or None


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process *pid* has used so far (Linux ``/proc``; 0.0
    where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime and stime, in clock ticks


def resident_bytes(pid: int) -> int:
    """The resident memory of process *pid* (Linux ``/proc``; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


__all__ = [
    "AGAINST",
    "cpu_seconds",
    "echo_server",
    "frames",
    "loopback",
    "measure",
    "ratio",
    "resident_bytes",
]
