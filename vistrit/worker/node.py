"""A worker node: joins the coordinator, heartbeats, and runs tasks in its slots.

Threads, each with an owner and a stop path:

* the **session** (:class:`~vistrit.session.NodeSession`) joins the coordinator that
  leads, heartbeats on a :class:`~vistrit.timers.RepeatingTimer` (the running-task count
  and Ready/Busy/Draining state), reads, and reconnects after a loss; its reader hands
  each message to :data:`ON_MESSAGE`: ``TaskAssign`` is accepted if a slot (or the
  prefetch queue) has room, refused otherwise, and handed to the slots; it is
  acknowledged at once, unless, to a v4 coordinator, it starts at once (its Running
  status says so) or it is queued behind a quick function (the ack is held back, see
  below); ``TaskCancel`` tells a running task to stop;
* the **slots** (:class:`~vistrit.worker.slots.Slots`, ``--slots`` threads) run task
  functions; each sends ``TaskStatus`` (Running, then progress if the function reports
  it) and finally ``TaskResult``. A quick function's Running status is held back
  (:mod:`vistrit.worker.news`): if the task ends first, its result acknowledges it.

Handshake: the worker offers the newest protocol version it speaks; if a coordinator
refuses that (the reference coordinator accepts only 1), it connects again offering 1.
After a reconnect it reports every task it still holds (a ``TaskStatus`` each) and the
results it finished while away.

Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any

from vistrit import defaults
from vistrit.credentials import Credentials
from vistrit.leader import Address, Refused
from vistrit.logic.ids import short
from vistrit.protocol import EncodeError
from vistrit.protocol import messages as m
from vistrit.protocol.frame import MAX_PAYLOAD, encode_frame_gathered
from vistrit.protocol.gather import Gather
from vistrit.protocol.types import (
    NodeCapabilities,
    NodeState,
    NodeType,
    SocketAddr,
    Task,
    TaskResult,
    TaskState,
    introduce,
)
from vistrit.session import NodeSession, node_auth
from vistrit.transport import Connection, ConnectionClosed, TLSConfig
from vistrit.worker.calls import remote_traceback
from vistrit.worker.execution import Outcome, run_task
from vistrit.worker.functions import DEFAULT, FunctionRegistry, TaskContext
from vistrit.worker.news import HeldNews
from vistrit.worker.slots import Slots

log = logging.getLogger(__name__)


class HandshakeRefused(ConnectionError):
    """The coordinator refused this worker; the message says why."""


class Worker:
    """A worker node. For callers: ``start()``, ``stop()``, ``wait()``; or ``with``.

    It proves a worker's credential from *credentials* (by default the token file, see
    :mod:`vistrit.credentials`; :class:`~vistrit.credentials.CredentialsError` if there is
    none). *allow_unauthenticated* lets it join a coordinator that does not authenticate
    (the reference implementation), falling back to protocol v1. The session's hooks
    (``hello``, ``heartbeat``, ``on_message``, ...) are called by its threads."""

    def __init__(
        self,
        coordinator: Address | Sequence[Address],
        *,
        slots: int = defaults.WORKER_SLOTS,
        tags: Sequence[str] = (),
        name: str | None = None,
        heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL,
        allow_commands: Collection[str] = (),
        modules: Collection[str] = (),
        functions: FunctionRegistry = DEFAULT,
        reconnect_timeout: float = defaults.RECONNECT_TIMEOUT,
        coordinator_timeout: float = defaults.COORDINATOR_TIMEOUT,
        credentials: Credentials | None = None,
        allow_unauthenticated: bool = False,
        tls: TLSConfig | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("a worker needs at least one slot")
        auth = node_auth(NodeType.Worker, credentials, allow_unauthenticated)
        addresses = [coordinator] if isinstance(coordinator[0], str) else list(coordinator)
        self.slots = slots
        self.tags = tuple(tags)
        self.name = name or f"worker-{platform.node() or 'local'}-{os.getpid()}"
        if isinstance(allow_commands, (str, bool)):
            raise TypeError("allow_commands takes the names of the programs this worker may run")
        self.allow_commands = frozenset(allow_commands)
        if isinstance(modules, str):
            raise TypeError("modules takes the names of the modules whose functions may run")
        for module in modules:  # imported here, never on a remote's word
            importlib.import_module(module)
        self.modules = frozenset(modules)
        self.functions = functions
        self.id = uuid.uuid4()
        self._lock = threading.Lock()
        self.session = NodeSession(
            self,
            addresses,  # type: ignore[arg-type]
            lock=self._lock,
            heartbeat_interval=heartbeat_interval,
            coordinator_timeout=coordinator_timeout,
            reconnect_timeout=reconnect_timeout,
            fall_back_to_v1=True,
            auth=auth,
            tls=tls,
        )
        self._running: dict[uuid.UUID, TaskContext] = {}
        self._stopped = threading.Event()
        self._pool: Slots | None = None
        self.error: str | None = None  # why the worker stopped, if not asked to
        self._unsent: list[Gather] = []  # results finished while away from the coordinator
        self._draining = False
        self._started: set[uuid.UUID] = set()  # tasks running now (not just queued)
        self._news = HeldNews()
        self._idle = threading.Condition(self._lock)  # notified when a started task ends

    @property
    def coordinator(self) -> Address:
        """The coordinator joined last."""
        return self.session.joined

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and handshake (raises ``OSError`` or :class:`HandshakeRefused`), then run.
        While the coordinators are still electing a leader, keep trying for a few seconds;
        while none is up yet, for up to ``reconnect_timeout`` (a worker may be started
        before its coordinator)."""
        self._pool = Slots(self.slots, self.name)
        try:
            wait = self.session.reconnect_timeout
            self.session.start(patience=defaults.CONNECT_TIMEOUT, wait_for_coordinators=wait)
        except Refused as exc:
            self._pool.shutdown()
            raise HandshakeRefused(str(exc)) from None
        except OSError:
            self._pool.shutdown()
            raise
        if (offer := self.offer()) is not None:
            self._post(offer)
        log.info(
            "%s: joined %s:%d with %d slot(s)%s",
            self.name,
            *self.coordinator,
            self.slots,
            f", tags {', '.join(self.tags)}" if self.tags else "",
        )

    def stop(self, drain_timeout: float = 0.0) -> None:
        """Leave the cluster; join every thread. Idempotent.

        With *drain_timeout* (what SIGTERM and Ctrl-C use), leave gracefully: heartbeat
        Draining (the coordinator sends no more tasks), let the running tasks finish for at
        most that long, then cancel what is left. Tasks not finished are not reported: the
        worker's ``Disconnect(graceful=True)`` hands them back to the coordinator, which
        gives them to other workers without counting them as lost.
        """
        if self.session.stopping:
            self._stopped.wait(defaults.SEND_TIMEOUT)
            return
        conn = self.session.conn
        if drain_timeout > 0 and conn is not None and not conn.closed:
            self._drain(drain_timeout)
        self.session.halt()
        with self._lock:
            for ctx in self._running.values():
                ctx._cancel.set()
        taken = self._pool.shutdown() if self._pool is not None else []  # never started
        with self._lock:
            for task_id in taken:
                self._running.pop(task_id, None)
        bye = m.Disconnect(node_id=self.id, reason="worker stopping", graceful=True)
        self.session.close(bye)  # after every result already posted
        self._stopped.set()
        log.info("%s: stopped", self.name)

    def _drain(self, timeout: float) -> None:
        """Announce Draining, refuse new work, and wait for the running tasks to finish."""
        self._draining = True
        log.info("%s: draining (at most %g s)", self.name, timeout)
        self.session.beat()
        assert self._pool is not None
        handed_back = self._pool.take_back()  # tasks queued here: handed back at once
        with self._lock:
            for task_id in handed_back:
                self._running.pop(task_id, None)
        for task_id in handed_back:  # a refusal after the fact puts it back in the queue
            self._news.reported(task_id)  # an acceptance held back must not follow it
            self._post(self._ack(task_id, False, "handed back: draining"))
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
        """How many tasks this worker holds (running, or queued for a slot)."""
        return len(self._running)

    # -- the session's hooks ----------------------------------------------------------------

    def hello(self, conn: Connection, version: int) -> m.Handshake:
        """The Handshake: this worker, its slots, memory, cores and tags."""
        capabilities = NodeCapabilities(
            max_concurrent_tasks=self.slots,
            available_memory_bytes=_memory_bytes(),
            cpu_cores=os.cpu_count() or 1,
            tags=self.tags,
        )
        node = introduce(
            self.id,
            NodeType.Worker,
            SocketAddr(*conn.local),
            self.name,
            int(time.time()),
            capabilities,
            NodeState.Starting,
        )
        return m.Handshake(node_info=node, protocol_version=version)

    def heartbeat(self) -> m.Heartbeat:
        """The Heartbeat: how many tasks run, and Ready, Busy or Draining. The news held
        back (:mod:`vistrit.worker.news`) is sent just before it."""
        for news in self._news.take():
            self._post(news)
        running = len(self._running)
        state = NodeState.Busy if running >= self.slots else NodeState.Ready
        if self._draining:
            state = NodeState.Draining
        return m.Heartbeat(
            node_id=self.id,
            timestamp=int(time.time()),
            running_tasks=running,
            state=state,
            cpu_usage=None,
            memory_usage=None,
        )

    def on_message(self, message: m.Message) -> None:
        """A message from the coordinator, dispatched by :data:`ON_MESSAGE`."""
        handler = ON_MESSAGE.get(type(message))
        if handler is not None:
            handler(self, message)

    def on_lost(self, reason: str) -> None:
        """The connection was lost: tasks keep running; their results wait for the next."""

    def offer(self, conn: Connection | None = None) -> m.WorkerOffer | None:
        """What this worker can run, for a v4 coordinator on *conn* (by default the one it
        joined last; ``None`` for an older one)."""
        conn = conn or self.session.conn
        if conn is None or conn.version < 4:
            return None
        return m.WorkerOffer(
            functions=tuple(sorted(self.functions.data)),
            reduce_functions=tuple(sorted(self.functions.reduce)),
            modules=tuple(sorted(self.modules)),
            commands=tuple(sorted(self.allow_commands)),
        )

    def on_rejoined(self, conn: Connection) -> list[m.Message | Gather]:
        """Joined again: say what it can run, report every task still held, then the
        results sent late."""
        offer = self.offer(conn)
        held = list(self._running)
        unsent, self._unsent = self._unsent, []
        now = int(time.time())
        backlog: list[m.Message | Gather] = [
            m.TaskStatus(
                task_id=task_id,
                worker_id=self.id,
                state=TaskState.Running(worker_id=self.id, started_at=now, progress=None),
                progress=None,
                message="still held after a reconnect",
            )
            for task_id in held
        ]
        log.info(
            "%s: rejoined %s:%d; %d task(s) held, %d result(s) sent late",
            self.name,
            *self.coordinator,
            len(held),
            len(unsent),
        )
        return ([offer] if offer is not None else []) + backlog + unsent

    def on_gave_up(self, reason: str) -> None:
        """No coordinator came back: stop, saying why."""
        self.error = f"{reason}; the coordinator did not come back"
        log.error("%s: %s; stopping", self.name, self.error)
        threading.Thread(target=self.stop, name=f"{self.name} stop").start()

    # -- messages from the coordinator ------------------------------------------------------

    def _on_assign(self, assign: m.TaskAssign) -> None:
        task = assign.task
        assert self._pool is not None
        conn = self.session.conn
        assert conn is not None
        with self._lock:
            room = self.slots + (defaults.MAX_PREFETCH if conn.version >= 2 else 0)
            accepted = len(self._running) < room and not (self.session.stopping or self._draining)
            if accepted:
                ctx = TaskContext(str(task.id))
                ctx._report = lambda percent: self._progress(task.id, percent)
                self._running[task.id] = ctx
            # To a v4 coordinator, a task that starts at once is acknowledged by its
            # TaskStatus (Running): one message less per task. A refused or queued
            # (prefetched) one is acknowledged as before.
            at_once = accepted and conn.version >= 4 and len(self._running) <= self.slots
        reason = None if accepted else ("draining" if self._draining else "no free slot")
        if not at_once:  # queued (to a v4 coordinator, maybe held back), or refused
            ack = self._ack(task.id, accepted, reason)
            if not accepted or conn.version < 4 or self._news.queued(task, ack) is not None:
                self._post(ack)
        if accepted:
            self._pool.submit(task.id, partial(self._execute, task, ctx))

    def _on_cancel(self, cancel: m.TaskCancel) -> None:
        with self._lock:
            ctx = self._running.get(cancel.task_id)
        if ctx is not None:
            log.info("%s: cancelling task %s", self.name, short(cancel.task_id))
            ctx._cancel.set()

    def _on_error(self, error: m.Error) -> None:
        log.warning("%s: coordinator says: %s", self.name, error.message)

    def _ack(self, task_id: uuid.UUID, accepted: bool, reason: str | None) -> m.TaskAssignAck:
        return m.TaskAssignAck(task_id=task_id, accepted=accepted, worker_id=self.id, reason=reason)

    def _post(self, message: m.Message) -> None:
        conn = self.session.conn
        if conn is not None:
            try:
                conn.post([message])
            except ConnectionClosed:
                pass  # the reader notices and reconnects

    # -- the pool ---------------------------------------------------------------------------

    def _execute(self, task: Task, ctx: TaskContext) -> None:
        conn = self.session.conn
        assert conn is not None
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
            # To a v4 coordinator, maybe held back: a quick task's result acknowledges it.
            if conn.version < 4 or self._news.started(task, status) is not None:
                conn.post([status])
            try:
                if ctx.cancelled:  # cancelled while it waited for a slot
                    outcome = Outcome(False, error="cancelled")
                else:
                    outcome = run_task(
                        task,
                        ctx,
                        self.functions,
                        allow_commands=self.allow_commands,
                        modules=self.modules,
                    )
            except Exception as exc:  # a thread boundary: the task's code failed
                trace = remote_traceback(exc)
                outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}", stderr=trace)
            if outcome.stderr and not outcome.success and outcome.exit_code is None:
                log.warning(
                    "%s: task %s raised %s\n%s", self.name, short(task.id), outcome.error,
                    outcome.stderr.rstrip(),
                )  # fmt: skip
            self._news.finished(task, time.monotonic() - started)
            # Free the slot before reporting: the coordinator may assign the next task as
            # soon as it reads the result, and must find the slot free.
            with self._lock:
                self._running.pop(task.id, None)
            if self.session.stopping and outcome.error == "cancelled":
                return  # stopped by our own shutdown: the coordinator gives it to another

            try:  # encoded here, so that a result that cannot be sent fails only its task
                report = encode_frame_gathered(self._report(task, outcome, started), conn.version)
            except EncodeError as exc:  # e.g. an error text that is not valid Unicode
                failure = Outcome(False, error=f"cannot send the result: {exc}")
                report = encode_frame_gathered(self._report(task, failure, started), conn.version)
            with self._lock:
                conn = self.session.conn  # the connection of now: maybe a new one
                assert conn is not None
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
        running = TaskState.Running(
            worker_id=self.id, started_at=int(time.time()), progress=percent
        )
        status = m.TaskStatus(
            task_id=task_id, worker_id=self.id, state=running, progress=percent, message=None
        )
        self._news.reported(task_id)
        self._post(status)


#: How a worker handles each message from the coordinator (anything else is ignored).
ON_MESSAGE: dict[type[m.Message], Callable[[Worker, Any], None]] = {
    m.TaskAssign: Worker._on_assign,
    m.TaskCancel: Worker._on_cancel,
    m.Error: Worker._on_error,
}


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
