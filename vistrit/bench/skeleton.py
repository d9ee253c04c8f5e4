"""W2's skeleton: its processes and threads, and no Vistrit code at all.

A W2 round trip crosses three processes and six threads, each woken in turn: the
client's main thread sends; a coordinator thread reads it and sends an assignment on to
the worker's connection; the worker's reader hands it to a slot thread, which sends the
result back; a coordinator thread sends it on; the client's reader thread resolves a
future, and the main thread, waiting on it, wakes. Each hop is a wake-up of a sleeping
thread, on this machine often on the other CPU.

The skeleton does exactly that with 16 raw bytes: a relay process with a thread per
connection, passing each message on under one lock; an echo process whose reader thread
hands each message to a slot thread through a ``queue.SimpleQueue``; and a client whose
reader thread resolves a ``concurrent.futures.Future`` per round trip. Its p50 is what
the design's shape costs here before any message is decoded, decided or encoded; W2
divided by it is how many such skeletons a round trip of Vistrit's costs
(:data:`vistrit.bench.floor.AGAINST`).

Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

MESSAGE = b"0123456789abcdef"
_CHUNK = 64 * 1024
_WORKER, _CLIENT = b"W", b"C"  # the byte each peer says first to the relay


def _connect(port: int, who: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.settimeout(None)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(who)
    return conn


def relay(fd: int) -> None:
    """Run in a helper process: on the listening socket *fd*, take the worker and the
    client, then pass what each sends on to the other, a thread per connection."""
    peers: dict[bytes, socket.socket] = {}
    with socket.socket(fileno=fd) as server:
        server.settimeout(30)
        while len(peers) < 2:
            conn, _ = server.accept()
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peers[conn.recv(1)] = conn
    lock = threading.Lock()  # as the coordinator's: held while deciding and sending

    def forward(source: socket.socket, target: socket.socket) -> None:
        while data := source.recv(_CHUNK):
            with lock:
                target.sendall(data)

    threading.Thread(target=forward, args=(peers[_WORKER], peers[_CLIENT]), daemon=True).start()
    forward(peers[_CLIENT], peers[_WORKER])


def echo_worker(port: int) -> None:
    """Run in a helper process: a worker with one slot, which sends back what it is sent."""
    conn = _connect(port, _WORKER)
    tasks: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def slot() -> None:
        while True:
            conn.sendall(tasks.get())

    threading.Thread(target=slot, daemon=True).start()
    while data := conn.recv(_CHUNK):
        tasks.put(data)


def skeleton(round_trips: int = 2_000, warm: int = 200) -> dict[str, float]:
    """The p50 of W2's skeleton round trips (see the module docstring)."""
    helpers = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        fd, port = server.fileno(), server.getsockname()[1]
        code = f"from vistrit.bench.skeleton import relay; relay({fd})"
        helpers.append(subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,)))
    try:
        code = f"from vistrit.bench.skeleton import echo_worker; echo_worker({port})"
        helpers.append(subprocess.Popen([sys.executable, "-c", code]))
        with _connect(port, _CLIENT) as conn:
            samples = _round_trips(conn, warm + round_trips)[warm:]
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait(10)
    return {"skeleton_round_trip_p50_us": statistics.median(samples) * 1e6}


def _round_trips(conn: socket.socket, count: int) -> list[float]:
    waiting: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()

    def read() -> None:  # the client's reader thread: a future resolved per answer
        got = 0
        while data := conn.recv(_CHUNK):
            got += len(data)
            while got >= len(MESSAGE):
                got -= len(MESSAGE)
                waiting.get().set_result(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answered: Future[None] = Future()
        waiting.put(answered)
        conn.sendall(MESSAGE)
        answered.result(30)
        samples.append(time.perf_counter() - started)
    conn.shutdown(socket.SHUT_RDWR)  # the reader reads the end of the stream
    reader.join(10)
    return samples


__all__ = ["echo_worker", "relay", "skeleton"]
