"""Helpers for tests that run real nodes in this process, over real sockets on 127.0.0.1.

Test task functions are registered here under ``test-*`` names: ``test-gate`` blocks until
the test opens the gate named by its data (or the task is cancelled), ``test-record``
records the order in which tasks ran, ``test-flaky`` fails a given number of times.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vistrit.client import VistritClient
from vistrit.coordinator import Coordinator
from vistrit.credentials import Credentials, default_path
from vistrit.leader import NodeAuth, answer_challenge
from vistrit.protocol import NEWEST_VERSION
from vistrit.protocol import messages as m
from vistrit.protocol.types import NodeInfo, NodeState, NodeType, SocketAddr, introduce
from vistrit.transport import Connection, connect
from vistrit.worker import TaskCancelled, TaskFailed, Worker, task
from vistrit.worker.functions import DEFAULT

GATES: dict[str, threading.Event] = {}
ORDER: list[str] = []
FAILURES: dict[str, int] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _lock:
        return GATES.setdefault(name, threading.Event())


@task(name="test-gate")
def _gate(data: bytes, ctx) -> str:  # type: ignore[no-untyped-def]
    name = data.decode()
    deadline = time.monotonic() + 20
    while not gate(name).wait(0.01):
        if ctx.cancelled:
            raise TaskCancelled()
        if time.monotonic() > deadline:
            raise TaskFailed(f"gate {name} never opened")
    return name


@task(name="test-record")
def _record(data: bytes) -> bytes:
    with _lock:
        ORDER.append(data.decode())
    return data


@task(name="test-flaky")
def _flaky(data: bytes) -> str:
    key, _, times = data.decode().partition(":")
    with _lock:
        FAILURES[key] = FAILURES.get(key, 0) + 1
        attempt = FAILURES[key]
    if attempt <= int(times):
        raise TaskFailed(f"planned failure {attempt}")
    return f"succeeded on attempt {attempt}"


@contextmanager
def restarted(data_dir: Path) -> Iterator[Coordinator]:
    """A coordinator started anew on *data_dir* (its journal replayed); stopped after."""
    again = Coordinator(("127.0.0.1", 0), data_dir=data_dir)
    again.start()
    try:
        assert again.core is not None
        yield again
    finally:
        again.stop()


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll *condition* until it is true; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.005)


def answer_to_a_worker(address: tuple[str, int], version: int = NEWEST_VERSION) -> m.Message | None:
    """What a coordinator answers a worker's Handshake offering *version* (after proving the
    tests' worker credential, if it asks): a HandshakeAck, a Redirect, or an Error."""
    info = introduce(uuid.uuid4(), NodeType.Worker, SocketAddr("127.0.0.1", 0), "probe", 0)
    conn, answer = join_raw(address, info, version)
    conn.close()
    return answer


def join_raw(
    address: tuple[str, int], info: NodeInfo, version: int = NEWEST_VERSION
) -> tuple[Connection, m.Message | None]:
    """A connection that said Handshake as *info* (and proved the tests' worker credential,
    if asked), and the coordinator's answer; the caller closes the connection."""
    conn = connect(address, timeout=5)
    try:
        hello = m.Handshake(node_info=info, protocol_version=version)
        conn.send(hello)
        deadline = time.monotonic() + 5
        answer = conn.receive(deadline)
        if isinstance(answer, m.AuthChallenge):
            answer = answer_challenge(conn, hello, answer, worker_auth(), deadline)
        if isinstance(answer, m.HandshakeAck) and answer.accepted:
            conn.agree(version)
            conn.lift_frame_cap()
            if version >= 4 and info.node_type == NodeType.Worker:
                conn.send(BUILT_IN_OFFER)  # a v4 worker is given tasks once it has offered
        return conn, answer
    except BaseException:
        conn.close()
        raise


def heartbeat(node_id: uuid.UUID, timestamp: int = 0) -> m.Heartbeat:
    """A Ready heartbeat with nothing running, as a raw worker in these tests sends it."""
    return m.Heartbeat(
        node_id=node_id,
        timestamp=timestamp,
        running_tasks=0,
        state=NodeState.Ready,
        cpu_usage=None,
        memory_usage=None,
    )


#: What a raw v4 worker in these tests offers: the built-in functions.
BUILT_IN_OFFER = m.WorkerOffer(
    functions=tuple(sorted(DEFAULT.data)),
    reduce_functions=tuple(sorted(DEFAULT.reduce)),
    modules=(),
    commands=(),
)


def worker_auth() -> NodeAuth:
    """A worker's credential from the tests' token file."""
    return NodeAuth(*Credentials.load(default_path()).own(NodeType.Worker))


@dataclass
class Cluster:
    coordinator: Coordinator
    workers: list[Worker] = field(default_factory=list)
    clients: list[VistritClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        host, port = self.coordinator.address
        return f"{host}:{port}"

    def add_worker(self, **options: object) -> Worker:
        worker = Worker(self.coordinator.address, heartbeat_interval=0.2, **options)  # type: ignore[arg-type]
        worker.start()
        self.workers.append(worker)
        wait_until(lambda: self._eligible(worker), what=f"{worker.name} to be listed")
        return worker

    def _eligible(self, worker: Worker) -> bool:
        core = self.coordinator.core
        assert core is not None
        entry = core.registry.get(worker.id)
        return entry is not None and entry.eligible

    def client(self) -> VistritClient:
        client = VistritClient(self.address, request_timeout=10)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for worker in self.workers:
            worker.stop()
        self.coordinator.stop()
