"""A worker node: connects to the coordinator, heartbeats, and runs tasks in a thread pool.

Threads, each with an owner and a stop path:

* the **reader** (``receive`` loop) takes ``TaskAssign`` and ``TaskCancel``: an assignment
  is acknowledged at once (accepted if a slot is free, refused otherwise) and handed to
  the pool;
* the **pool** (``--slots`` threads) runs task functions; each sends ``TaskStatus``
  (Running, then progress if the function reports it) and finally ``TaskResult``;
* the **heartbeat** is a chain of ``threading.Timer`` s: each tick sends a ``Heartbeat``
  with the running-task count and Ready/Busy state, then schedules the next tick, but
  only while the worker runs. ``stop()`` cancels it.

Handshake: the worker offers the newest protocol version it speaks; if a coordinator
refuses that (the reference coordinator accepts only 1), it connects again offering 1.

Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from vistrit import defaults
from vistrit.protocol import EncodeError, ProtocolError, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION
from vistrit.protocol.frame import MAX_PAYLOAD
from vistrit.protocol.types import (
    NodeCapabilities,
    NodeInfo,
    NodeState,
    NodeType,
    SocketAddr,
    Task,
    TaskResult,
    TaskState,
    introduce,
)
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout, connect
from vistrit.worker.execution import Outcome, run_task
from vistrit.worker.functions import DEFAULT, FunctionRegistry, TaskContext

log = logging.getLogger(__name__)


class HandshakeRefused(ConnectionError):
    """The coordinator refused this worker; the message says why."""


class Worker:
    """A worker node. For callers: ``start()``, ``stop()``, ``wait()``; or ``with``."""

    def __init__(
        self,
        coordinator: tuple[str, int],
        *,
        slots: int = defaults.WORKER_SLOTS,
        tags: Sequence[str] = (),
        name: str | None = None,
        heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL,
        allow_commands: bool = False,
        functions: FunctionRegistry = DEFAULT,
    ) -> None:
        if slots < 1:
            raise ValueError("a worker needs at least one slot")
        self.coordinator = coordinator
        self.slots = slots
        self.tags = tuple(tags)
        self.name = name or f"worker-{platform.node() or 'local'}-{os.getpid()}"
        self.heartbeat_interval = heartbeat_interval
        self.allow_commands = allow_commands
        self.functions = functions
        self.id = uuid.uuid4()
        self._lock = threading.Lock()
        self._running: dict[uuid.UUID, TaskContext] = {}
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._conn: Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._reader: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.error: str | None = None  # why the worker stopped, if not asked to

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and handshake (raises ``OSError`` or :class:`HandshakeRefused`), then run."""
        self._conn = self._connect(NEWEST_VERSION)
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix=f"{self.name} slot")
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.name} reader")
        self._reader.start()
        self._beat()
        log.info(
            "%s: joined %s:%d with %d slot(s)%s",
            self.name,
            *self.coordinator,
            self.slots,
            f", tags {', '.join(self.tags)}" if self.tags else "",
        )

    def _connect(self, version: int) -> Connection:
        conn = connect(self.coordinator, name=self.name)
        conn.send(m.Handshake(node_info=self._node_info(conn), protocol_version=version))
        try:
            ack = conn.receive(time.monotonic() + defaults.HANDSHAKE_TIMEOUT)
        except (PeerTimeout, ProtocolError, ConnectionClosed) as exc:
            conn.close()
            raise HandshakeRefused(f"no HandshakeAck: {exc}") from exc
        if not isinstance(ack, m.HandshakeAck):
            conn.close()
            raise HandshakeRefused(f"expected HandshakeAck, got {ack!r}")
        if not ack.accepted:
            conn.close()
            if version > 1:  # a v1-only coordinator: offer v1
                return self._connect(1)
            raise HandshakeRefused(ack.reason or "refused")
        conn.version = version
        conn.start_writer()  # assignment acks, statuses and results leave in batches
        return conn

    def _node_info(self, conn: Connection) -> NodeInfo:
        capabilities = NodeCapabilities(
            max_concurrent_tasks=self.slots,
            available_memory_bytes=_memory_bytes(),
            cpu_cores=os.cpu_count() or 1,
            tags=self.tags,
        )
        local = SocketAddr(*conn.local)
        return introduce(
            self.id,
            NodeType.Worker,
            local,
            self.name,
            int(time.time()),
            capabilities,
            NodeState.Starting,
        )

    def stop(self) -> None:
        """Say goodbye, cancel running tasks, and join every thread. Idempotent."""
        if self._stopping.is_set():
            self._stopped.wait(defaults.SEND_TIMEOUT)
            return
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            for ctx in self._running.values():
                ctx._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._conn is not None:
            try:
                bye = m.Disconnect(node_id=self.id, reason="worker stopping", graceful=True)
                self._conn.post([bye])  # after every result already posted
                self._conn.flush()
            except ConnectionClosed:
                pass
            self._conn.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(defaults.SEND_TIMEOUT)
        self._stopped.set()
        log.info("%s: stopped", self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has stopped (asked to, or lost its coordinator)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> int:
        return len(self._running)

    # -- the reader -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._conn is not None
        try:
            while not self._stopping.is_set():
                message = self._conn.receive()
                if message is None:
                    break
                if isinstance(message, m.TaskAssign):
                    self._on_assign(message.task)
                elif isinstance(message, m.TaskCancel):
                    self._on_cancel(message.task_id)
                elif isinstance(message, m.Error):
                    log.warning("%s: coordinator says: %s", self.name, message.message)
        except (ProtocolError, ConnectionClosed, PeerTimeout) as exc:
            self.error = f"connection to the coordinator failed: {exc}"
        except Exception:  # a thread boundary: log, then stop the worker
            log.exception("%s: reader failed", self.name)
            self.error = "internal error in the reader"
        if not self._stopping.is_set():
            self.error = self.error or "the coordinator closed the connection"
            log.error("%s: %s; stopping", self.name, self.error)
            threading.Thread(target=self.stop, name=f"{self.name} stop").start()

    def _on_assign(self, task: Task) -> None:
        assert self._conn is not None and self._pool is not None
        with self._lock:
            room = self.slots + (defaults.MAX_PREFETCH if self._conn.version >= 2 else 0)
            accepted = len(self._running) < room and not self._stopping.is_set()
            if accepted:
                ctx = TaskContext(str(task.id))
                ctx._report = lambda percent: self._progress(task.id, percent)
                self._running[task.id] = ctx
        reason = None if accepted else "no free slot"
        self._conn.post(
            [m.TaskAssignAck(task_id=task.id, accepted=accepted, worker_id=self.id, reason=reason)]
        )
        if accepted:
            self._pool.submit(self._execute, task, ctx)

    def _on_cancel(self, task_id: uuid.UUID) -> None:
        with self._lock:
            ctx = self._running.get(task_id)
        if ctx is not None:
            log.info("%s: cancelling task %s", self.name, task_id)
            ctx._cancel.set()

    # -- the pool ---------------------------------------------------------------------------

    def _execute(self, task: Task, ctx: TaskContext) -> None:
        assert self._conn is not None
        started = time.monotonic()
        try:
            running = TaskState.Running(
                worker_id=self.id, started_at=int(time.time()), progress=None
            )
            status = m.TaskStatus(
                task_id=task.id, worker_id=self.id, state=running, progress=None, message=None
            )
            self._conn.post([status])
            try:
                if ctx.cancelled:  # cancelled while it waited for a slot
                    outcome = Outcome(False, error="cancelled")
                else:
                    outcome = run_task(
                        task, ctx, self.functions, allow_commands=self.allow_commands
                    )
            except Exception as exc:  # a thread boundary: the task's code failed
                log.warning("%s: task %s raised %r", self.name, task.id, exc)
                outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}")
            # Free the slot before reporting: the coordinator may assign the next task as
            # soon as it reads the result, and must find the slot free.
            with self._lock:
                self._running.pop(task.id, None)
            if self._stopping.is_set() and outcome.error == "cancelled":
                return  # stopped by our own shutdown: the coordinator gives it to another

            try:  # encoded here, so that a result that cannot be sent fails only its task
                report = encode_frame(self._report(task, outcome, started), self._conn.version)
            except EncodeError as exc:  # e.g. an error text that is not valid Unicode
                failure = Outcome(False, error=f"cannot send the result: {exc}")
                report = encode_frame(self._report(task, failure, started), self._conn.version)
            self._conn.post([report])
        except ConnectionClosed:
            pass  # the reader notices and stops the worker
        finally:
            with self._lock:
                self._running.pop(task.id, None)

    def _report(self, task: Task, outcome: Outcome, started: float) -> m.TaskResultMessage:
        if outcome.data is not None and len(outcome.data) > MAX_PAYLOAD - 64 * 1024:
            outcome = Outcome(
                False, error=f"the result is {len(outcome.data)} bytes, too large for a frame"
            )
        result = TaskResult(
            task_id=task.id,
            success=outcome.success,
            data=outcome.data,
            error=outcome.error,
            exit_code=outcome.exit_code,
            duration_ms=int((time.monotonic() - started) * 1000),
            worker_id=self.id,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
        )
        return m.TaskResultMessage(result=result)

    def _progress(self, task_id: uuid.UUID, percent: int) -> None:
        assert self._conn is not None
        running = TaskState.Running(
            worker_id=self.id, started_at=int(time.time()), progress=percent
        )
        try:
            self._conn.send(
                m.TaskStatus(
                    task_id=task_id,
                    worker_id=self.id,
                    state=running,
                    progress=percent,
                    message=None,
                )
            )
        except ConnectionClosed:
            pass

    # -- the heartbeat ----------------------------------------------------------------------

    def _beat(self) -> None:
        """Send one Heartbeat, then schedule the next, while the worker runs."""
        if self._stopping.is_set() or self._conn is None:
            return
        running = len(self._running)
        state = NodeState.Busy if running >= self.slots else NodeState.Ready
        beat = m.Heartbeat(
            node_id=self.id,
            timestamp=int(time.time()),
            running_tasks=running,
            state=state,
            cpu_usage=None,
            memory_usage=None,
        )
        try:
            self._conn.send(beat)
        except ConnectionClosed:
            return
        self._timer = threading.Timer(self.heartbeat_interval, self._beat)
        self._timer.name = f"{self.name} heartbeat"
        self._timer.daemon = True
        self._timer.start()


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
