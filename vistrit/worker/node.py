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
Given several coordinators, it joins the one that leads (:mod:`vistrit.leader`), and
looks for the leader again when the connection is lost or the coordinator stops
answering its heartbeats for ``coordinator_timeout``.

Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from vistrit import defaults
from vistrit.leader import LeaderFinder, NoLeader, Refused
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
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout
from vistrit.worker.execution import Outcome, run_task
from vistrit.worker.functions import DEFAULT, FunctionRegistry, TaskContext

log = logging.getLogger(__name__)


class HandshakeRefused(ConnectionError):
    """The coordinator refused this worker; the message says why."""


class Worker:
    """A worker node. For callers: ``start()``, ``stop()``, ``wait()``; or ``with``."""

    def __init__(
        self,
        coordinator: tuple[str, int] | Sequence[tuple[str, int]],
        *,
        slots: int = defaults.WORKER_SLOTS,
        tags: Sequence[str] = (),
        name: str | None = None,
        heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL,
        allow_commands: bool = False,
        functions: FunctionRegistry = DEFAULT,
        reconnect_timeout: float = defaults.RECONNECT_TIMEOUT,
        coordinator_timeout: float = defaults.COORDINATOR_TIMEOUT,
    ) -> None:
        if slots < 1:
            raise ValueError("a worker needs at least one slot")
        addresses = [coordinator] if isinstance(coordinator[0], str) else list(coordinator)
        self.finder = LeaderFinder(addresses)  # type: ignore[arg-type]
        self.coordinator: tuple[str, int] = self.finder.addresses[0]  # the one joined
        self.coordinator_timeout = coordinator_timeout
        self._last_heard = time.monotonic()
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
        self.reconnect_timeout = reconnect_timeout
        self._unsent: list[bytes] = []  # results finished while away from the coordinator
        self._draining = False
        self._started: set[uuid.UUID] = set()  # tasks running now (not just queued)
        self._idle = threading.Condition(self._lock)  # notified when a started task ends
        self._futures: dict[uuid.UUID, Future[None]] = {}  # in the pool, to hand back

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and handshake (raises ``OSError`` or :class:`HandshakeRefused`), then run.
        While the coordinators are still electing a leader, keep trying for a few seconds."""
        self._conn = self._connect(NEWEST_VERSION, patience=defaults.CONNECT_TIMEOUT)
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

    def _connect(self, version: int, patience: float = 0.0) -> Connection:
        """Join the leader among the coordinators (see :mod:`vistrit.leader`); while they
        elect one, keep trying for up to *patience* seconds."""

        def hello(conn: Connection) -> m.Handshake:
            return m.Handshake(node_info=self._node_info(conn), protocol_version=version)

        try:
            conn, _ = self.finder.open(hello, defaults.HANDSHAKE_TIMEOUT, self.name, patience)
        except Refused as exc:
            if version > 1:  # a v1-only coordinator: offer v1
                return self._connect(1, patience)
            raise HandshakeRefused(str(exc)) from None
        self.coordinator = self.finder.joined
        self._last_heard = time.monotonic()
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

    def stop(self, drain_timeout: float = 0.0) -> None:
        """Leave the cluster; join every thread. Idempotent.

        With *drain_timeout* (what SIGTERM and Ctrl-C use), leave gracefully: heartbeat
        Draining (the coordinator sends no more tasks), let the running tasks finish for at
        most that long, then cancel what is left. Tasks not finished are not reported: the
        worker's ``Disconnect(graceful=True)`` hands them back to the coordinator, which
        gives them to other workers without counting them as lost.
        """
        if self._stopping.is_set():
            self._stopped.wait(defaults.SEND_TIMEOUT)
            return
        if drain_timeout > 0 and self._conn is not None and not self._conn.closed:
            self._drain(drain_timeout)
        with self._lock:  # a reconnection either sees this, or has set its connection
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
            self._conn.join_writer()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(defaults.SEND_TIMEOUT)
        self._stopped.set()
        log.info("%s: stopped", self.name)

    def _drain(self, timeout: float) -> None:
        """Announce Draining, refuse new work, and wait for the running tasks to finish."""
        self._draining = True
        log.info("%s: draining (at most %g s)", self.name, timeout)
        self._beat(reschedule=False)
        handed_back = []
        with self._lock:  # tasks queued here and not started: handed back at once
            for task_id, future in list(self._futures.items()):
                if future.cancel():
                    handed_back.append(task_id)
                    del self._futures[task_id]
                    self._running.pop(task_id, None)
        assert self._conn is not None
        for task_id in handed_back:  # a refusal after the fact puts it back in the queue
            self._conn.post(
                [
                    m.TaskAssignAck(
                        task_id=task_id,
                        accepted=False,
                        worker_id=self.id,
                        reason="handed back: draining",
                    )
                ]
            )
        with self._idle:
            finished = self._idle.wait_for(lambda: not self._started, timeout)
        if not finished:
            log.warning(
                "%s: %d task(s) still running; handing them back", self.name, len(self._started)
            )

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
        """Read until the connection ends; then reconnect (tasks keep running), or stop."""
        while not self._stopping.is_set():
            reason = self._read_until_lost()
            if self._stopping.is_set():
                return
            assert self._conn is not None
            self._conn.close()
            self._conn.join_writer()
            log.warning("%s: %s; reconnecting", self.name, reason)
            if not self._reconnect():
                if self._stopping.is_set():
                    return  # asked to stop meanwhile
                self.error = f"{reason}; the coordinator did not come back"
                log.error("%s: %s; stopping", self.name, self.error)
                threading.Thread(target=self.stop, name=f"{self.name} stop").start()
                return

    def _read_until_lost(self) -> str:
        assert self._conn is not None
        try:
            while not self._stopping.is_set():
                message = self._conn.receive()
                if message is None:
                    return "the coordinator closed the connection"
                self._last_heard = time.monotonic()
                deposed = self.finder.deposed(message)
                if deposed is not None:
                    return deposed
                if isinstance(message, m.TaskAssign):
                    self._on_assign(message.task)
                elif isinstance(message, m.TaskCancel):
                    self._on_cancel(message.task_id)
                elif isinstance(message, m.Error):
                    log.warning("%s: coordinator says: %s", self.name, message.message)
        except (ProtocolError, ConnectionClosed, PeerTimeout) as exc:
            return f"connection to the coordinator failed: {exc}"
        except Exception:  # a thread boundary: log, then reconnect
            log.exception("%s: reader failed", self.name)
            return "internal error in the reader"
        return "stopping"

    def _reconnect(self) -> bool:
        """Join again (with backoff), then tell the coordinator what this worker holds.

        The coordinator may still have the old connection open (it notices a silent one
        only after its heartbeat timeout) and refuse the same node id until then: that is
        one more reason to try again. Once joined, the worker reports every task it still
        runs or has queued (a ``TaskStatus`` each), sends the results it could not send
        while away, and heartbeats again.
        """
        deadline = time.monotonic() + self.reconnect_timeout
        pause = defaults.RECONNECT_BACKOFF
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                conn = self._connect(NEWEST_VERSION)
            except (OSError, HandshakeRefused) as exc:
                log.debug("%s: not yet: %s", self.name, exc)
                self._stopping.wait(pause * (0.5 + random.random() / 2))
                if not isinstance(exc, NoLeader):  # an election is brief: keep trying
                    pause = min(defaults.RECONNECT_BACKOFF_MAX, pause * 2)
                continue
            with self._lock:
                if self._stopping.is_set():  # stopped meanwhile: this connection is not wanted
                    conn.close()
                    return False
                self._conn = conn
                held = list(self._running)
                unsent, self._unsent = self._unsent, []
            now = int(time.time())
            for task_id in held:
                running = TaskState.Running(worker_id=self.id, started_at=now, progress=None)
                conn.post(
                    [
                        m.TaskStatus(
                            task_id=task_id,
                            worker_id=self.id,
                            state=running,
                            progress=None,
                            message="still held after a reconnect",
                        )
                    ]
                )
            conn.post(unsent)
            log.info(
                "%s: rejoined %s:%d; %d task(s) held, %d result(s) sent late",
                self.name,
                *self.coordinator,
                len(held),
                len(unsent),
            )
            self._beat()
            return True
        return False

    def _on_assign(self, task: Task) -> None:
        assert self._conn is not None and self._pool is not None
        with self._lock:
            room = self.slots + (defaults.MAX_PREFETCH if self._conn.version >= 2 else 0)
            accepted = len(self._running) < room and not (self._stopping.is_set() or self._draining)
            if accepted:
                ctx = TaskContext(str(task.id))
                ctx._report = lambda percent: self._progress(task.id, percent)
                self._running[task.id] = ctx
        reason = None if accepted else ("draining" if self._draining else "no free slot")
        self._conn.post(
            [m.TaskAssignAck(task_id=task.id, accepted=accepted, worker_id=self.id, reason=reason)]
        )
        if accepted:
            future = self._pool.submit(self._execute, task, ctx)
            with self._lock:
                if task.id in self._running:
                    self._futures[task.id] = future

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
        with self._lock:
            self._started.add(task.id)
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
            with self._lock:
                conn = self._conn
                if conn.closed:  # away from the coordinator: send it after the reconnect
                    self._unsent.append(report)
                    return
            conn.post([report])
        except ConnectionClosed:
            pass  # the reader notices and reconnects
        finally:
            with self._lock:
                self._running.pop(task.id, None)
                self._started.discard(task.id)
                self._futures.pop(task.id, None)
                self._idle.notify_all()

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

    def _beat(self, reschedule: bool = True) -> None:
        """Send one Heartbeat, then schedule the next, while the worker runs."""
        if self._stopping.is_set() or self._conn is None:
            return
        silent = time.monotonic() - self._last_heard
        if silent > self.coordinator_timeout and not self._conn.closed:
            log.warning("%s: no answer from the coordinator for %.1f s", self.name, silent)
            self._conn.close()  # the reader wakes up and looks for the leader
        running = len(self._running)
        state = NodeState.Busy if running >= self.slots else NodeState.Ready
        if self._draining:
            state = NodeState.Draining
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
        if not reschedule:
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
