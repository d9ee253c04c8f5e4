"""``VistritClient``: the SDK, one synchronous class. The CLI is a thin layer over it.

::

    from vistrit import VistritClient

    with VistritClient("localhost:7878") as client:
        future = client.submit(mytasks.area, 3, 4.5)  # a worker runs mytasks.area(3, 4.5)
        print(future.result())                      # 13.5 (a float: values keep their type)
        future = client.submit("uppercase", "hello", retries=3, timeout=30, priority="high")
        print(future.result())                      # HELLO
        counts = client.map("word_count", ["a b", "c d e"])
        print(client.gather(counts))                # ['2', '3']
        total = client.map_reduce("word_count", ["a b", "c d e"], "sum")
        print(total.result())                       # 5

How it works: the client's :class:`~vistrit.session.NodeSession` joins the coordinator
that leads (as a ``Client``, protocol v2 and up: never given tasks), heartbeats, and
after a lost connection finds the leader again and resubmits every unfinished task under
the same id. Requests are pipelined (:mod:`vistrit.replies`): ``submit`` returns at once
with a :class:`TaskFuture`, resolved when the coordinator pushes the task's outcome (the
function's value; by name, ``str`` for ``str`` data, else ``bytes``; or a TaskError).

Failures are typed (:mod:`vistrit.results`, importable from here too): :class:`TaskError`,
:class:`TaskRejected`, :class:`TaskNotFound`, :class:`CoordinatorUnavailable`,
``concurrent.futures.CancelledError`` and ``TimeoutError``.

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from vistrit import defaults
from vistrit.addresses import parse_addresses
from vistrit.credentials import Credentials
from vistrit.leader import NoLeader
from vistrit.protocol import messages as m
from vistrit.protocol.types import (
    NodeInfo,
    NodeState,
    NodeType,
    SocketAddr,
    TaskPayload,
    TaskPriority,
    introduce,
)
from vistrit.replies import Replies
from vistrit.results import (
    ClusterStatus,
    CoordinatorUnavailable,
    TaskError,
    TaskFuture,
    TaskInfo,
    TaskNotFound,
    TaskRejected,
    TaskTooLarge,
    VistritError,
    as_completed,
    gather,
    kind_of,
)
from vistrit.session import NodeSession, node_auth
from vistrit.submission import check_options, new_task, payload_of, task_id_of, to_bytes
from vistrit.taskbook import TaskBook
from vistrit.transport import Connection, ConnectionClosed, TLSConfig

log = logging.getLogger(__name__)


class VistritClient:
    """A connection to a Vistrit cluster (see the module docstring). Thread-safe.

    It proves a client's credential from *credentials* (by default the token file, see
    :mod:`vistrit.credentials`), and never joins a coordinator that does not prove it
    holds the same secret."""

    def __init__(
        self,
        coordinators: str | Sequence[str] = defaults.COORDINATOR,
        *,
        name: str | None = None,
        request_timeout: float = defaults.REQUEST_TIMEOUT,
        connect_timeout: float = defaults.CONNECT_TIMEOUT,
        reconnect_timeout: float = defaults.RECONNECT_TIMEOUT,
        coordinator_timeout: float = defaults.COORDINATOR_TIMEOUT,
        credentials: Credentials | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        texts = coordinators if isinstance(coordinators, str) else ",".join(coordinators)
        self.addresses = parse_addresses(texts)
        self.id = uuid.uuid4()
        self.name = name or f"client-{os.getpid()}"
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self.replies = Replies()  # the requests waiting for an answer (pipelining)
        self.book = TaskBook(self._lock)  # the unfinished tasks, and their futures
        self._closed = False
        self._gave_up = False  # the coordinators were lost for good
        self._connected = threading.Event()  # clear while reconnecting
        self.session = NodeSession(
            self,
            self.addresses,
            lock=self._lock,
            coordinator_timeout=coordinator_timeout,
            reconnect_timeout=reconnect_timeout,
            handshake_timeout=connect_timeout,
            daemon=True,
            auth=node_auth(NodeType.Client, credentials),
            tls=tls,
        )
        try:
            self.session.start(patience=connect_timeout)
        except NoLeader as exc:
            raise CoordinatorUnavailable(f"no coordinator leads: {exc}") from exc
        except OSError as exc:
            raise CoordinatorUnavailable(f"no coordinator answered: {exc}") from exc
        self._connected.set()

    def close(self) -> None:
        """Close the connection; unfinished futures fail with CoordinatorUnavailable."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._connected.set()  # requests waiting for a reconnection fail now
        bye = m.Disconnect(node_id=self.id, reason="client closing", graceful=True)
        self.session.close(bye)  # everything posted before the goodbye goes out first
        self._fail_all(CoordinatorUnavailable("the client was closed"))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (another thread may call it at any time)."""
        return self._closed

    def __enter__(self) -> VistritClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting -------------------------------------------------------------------------

    def submit(
        self,
        function: str | Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        timeout: float = 0,
        priority: str | TaskPriority = "normal",
        tags: Iterable[str] = (),
        after: Iterable[uuid.UUID | TaskFuture | str] = (),
        name: str | None = None,
        task_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> TaskFuture:
        """Run *function* on a worker; returns at once with the task's future.

        * A function (defined at the top of a module), or its path ``"module:name"``: it is
          called as ``function(*args, **kwargs)`` on a worker started with ``--tasks``
          naming its module; arguments and result are Python values
          (:mod:`vistrit.protocol.values`: ``None``, ``bool``, ``int``, ``float``,
          ``str``, ``bytes``, ``list``, ``tuple``, ``dict``).
        * A task function's name (``"uppercase"``, an ``@task``): it is given one ``str``
          or ``bytes`` argument as its data (v1's ``Data`` task); the result is ``str`` if
          the data was ``str``, else ``bytes``.

        *retries*: further attempts after a failure. *timeout*: seconds an attempt may take
        (0: no limit; whole seconds, rounded up). *priority*: low, normal, high or
        critical. *tags*: the worker must have them all. *after*: tasks (ids or futures)
        that must complete first. *name*: shown in listings. *task_id*: choose the id, so
        that submitting again is idempotent. Every other keyword goes to the function.
        """
        options: dict[str, Any] = dict(retries=retries, timeout=timeout, priority=priority)
        options.update(tags=tags, after=after, task_id=task_id)
        payload, kind, default_name = payload_of(function, args, kwargs)
        return self._submit(payload, kind, name or default_name, options)

    def submit_call(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        future_class: type[TaskFuture] = TaskFuture,
        **options: Any,
    ) -> TaskFuture:
        """Call *function* (a module-level function, or ``"module:name"``) with *args* and
        *kwargs* on a worker; *options* are :meth:`submit` 's. The future's result is the
        value it returned; it is a *future_class* (the Executor's keep the stricter
        ``concurrent.futures`` contract)."""
        if isinstance(function, str) and ":" not in function:
            raise ValueError(f"submit_call takes a function or its 'module:name', not {function!r}")
        payload, kind, name = payload_of(function, args, kwargs or {})
        return self._submit(payload, kind, options.pop("name", None) or name, options, future_class)

    def submit_compute(self, expression: str, **options: Any) -> TaskFuture:
        """Evaluate arithmetic (``"2+3*4"``) on a worker; the result is its text (``"14"``)."""
        payload, name = TaskPayload.Compute(expression=expression), expression[:40]
        return self._submit(payload, "text", options.pop("name", name), options)

    def submit_command(self, command: str, args: Sequence[str] = (), **options: Any) -> TaskFuture:
        """Run a program on a worker started with ``--allow-commands``; the result is its stdout."""
        payload = TaskPayload.Command(command=command, args=tuple(args))
        return self._submit(payload, "text", options.pop("name", command[:40]), options)

    def submit_map(
        self, function: str, chunks: Sequence[str | bytes], **options: Any
    ) -> TaskFuture:
        """One task applying *function* to each chunk; the outputs joined with newlines."""
        payload = TaskPayload.Map(function=function, input_chunks=tuple(map(to_bytes, chunks)))
        kind = kind_of(payload, all(isinstance(c, str) for c in chunks))
        return self._submit(payload, kind, options.pop("name", f"map {function}"), options)

    def submit_reduce(
        self, function: str, inputs: Sequence[str | bytes] = (), **options: Any
    ) -> TaskFuture:
        """Reduce *inputs* (or, if none and ``after=`` is given, those tasks' results)."""
        results = tuple(to_bytes(i) for i in inputs)
        payload = TaskPayload.Reduce(function=function, intermediate_results=results)
        return self._submit(payload, "text", options.pop("name", f"reduce {function}"), options)

    def _submit(self, payload: TaskPayload, kind: str, name: str, options: dict[str, Any],
                future_class: type[TaskFuture] = TaskFuture) -> TaskFuture:  # fmt: skip
        """Submit one task: see :meth:`submit_all`."""
        return self.submit_all([(payload, kind, name)], options, future_class)[0]

    def submit_all(self, entries: list[tuple[TaskPayload, str, str]], options: dict[str, Any],
                    future_class: type[TaskFuture] = TaskFuture) -> list[TaskFuture]:  # fmt: skip
        """Submit a task for each ``(payload, kind, name)`` (as
        :func:`~vistrit.submission.payload_of` makes them): *kind* says how its result is
        read (:func:`~vistrit.results.kind_of`), *options* are
        :func:`~vistrit.submission.new_task` 's. To a v4 coordinator, several go in
        batches (one frame, and one acknowledgement, for up to 1,000 tasks)."""
        checked = check_options(options)
        tasks = [new_task(payload, name, self.id, **checked) for payload, _, name in entries]
        futures = [future_class(self, t.id, kind) for t, (_, kind, _) in zip(tasks, entries)]
        conn = self.session.conn
        bulk = len(tasks) > 1 and conn is not None and conn.version >= 4
        with self._lock:
            self._check_open()
            sends = self.book.submissions(tasks, futures, bulk, self.replies.on_answer)
        self._send(*sends)
        return futures

    # -- many tasks -------------------------------------------------------------------------

    def map(self, function: str, items: Iterable[str | bytes], **options: Any) -> list[TaskFuture]:
        """One task per item; returns their futures, in order. To a v4 coordinator they go
        in batches: one frame, and one acknowledgement, for up to 1,000 tasks."""
        name = options.pop("name", None)
        entries = [payload_of(function, (item,), {}) for item in items]
        return self.submit_all([(p, kind, name or n) for p, kind, n in entries], options)

    #: The results of futures, in order (raises the first failure): :func:`~vistrit.results.gather`.
    gather = staticmethod(gather)

    #: Futures as they finish (``concurrent.futures.as_completed``).
    as_completed = staticmethod(as_completed)

    def map_reduce(
        self, map_function: str, chunks: Iterable[str | bytes], reduce_function: str, **options: Any
    ) -> TaskFuture:
        """A task per chunk, plus a reduce task that runs after them all, fed their results."""
        maps = self.map(map_function, chunks, **options)
        options = {k: v for k, v in options.items() if k not in ("name", "task_id")}
        return self.submit_reduce(
            reduce_function, (), after=maps, name=f"reduce {reduce_function}", **options
        )

    # -- asking -----------------------------------------------------------------------------

    def status(self, task_id: uuid.UUID | str) -> TaskInfo:
        """The task's current state (and result, once it has one)."""
        key = task_id_of(task_id)
        query = m.TaskQuery(task_id=key)
        reply = self._request(lambda: (self.replies.expect_about(key, "query"), query), True)
        assert isinstance(reply, m.TaskQueryResponse)
        waiting = self.book.waiting(key)
        if not reply.found or reply.task is None:
            raise TaskNotFound(f"no task {key}")
        return TaskInfo.of(reply.task, reply.result, waiting)

    def wait(
        self, task_id: uuid.UUID | str, timeout: float | None = None, poll: float = 0.05
    ) -> TaskInfo:
        """Wait until a task (submitted by anyone) is finished; returns its final TaskInfo."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.status(task_id)
            if info.finished:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {info.id} is still {info.state}")
            time.sleep(poll)  # polling a task this client did not submit: no push for it

    def cancel(self, task_id: uuid.UUID | str) -> bool:
        """Cancel a task: True if it was cancelled (or its worker told to stop it)."""
        key = task_id_of(task_id)
        message = m.TaskCancel(task_id=key, requested_by=self.id, reason="cancelled by client")
        reply = self._request(lambda: (self.replies.expect_about(key, "cancel"), message), False)
        assert isinstance(reply, m.TaskCancelAck)
        return reply.accepted

    def cluster_status(self) -> ClusterStatus:
        """The cluster's counts, the leader's term, and the coordinator that answered."""
        reply = self._ask(lambda rid: m.ClusterStatusRequest(request_id=rid))
        assert isinstance(reply, m.ClusterStatusResponse)
        address = "{}:{}".format(*self.session.joined)
        return ClusterStatus.of(reply, self.session.finder.term, address)

    def workers(self) -> list[NodeInfo]:
        """The workers connected to the leader, with their state and load."""
        reply = self._ask(lambda rid: m.WorkerListRequest(request_id=rid))
        assert isinstance(reply, m.WorkerListResponse)
        return list(reply.workers)

    def tasks(self, limit: int = 100, state: str | None = None, offset: int = 0) -> list[TaskInfo]:
        """The newest tasks the coordinator remembers (payload bytes left out): those in
        *state* (``"Running"``), skipping the *offset* newest. An answer carries at most
        1,000; a coordinator older than v4 takes neither *state* nor *offset*."""

        def build(rid: uuid.UUID) -> m.Message:
            if self.session.conn is not None and self.session.conn.version >= 4:
                return m.TaskListQuery(request_id=rid, state=state, offset=offset, limit=limit)
            if state is not None or offset:
                raise VistritError("this coordinator (older than v4) lists no state or page")
            return m.TaskListRequest(request_id=rid, limit=limit)

        reply = self._ask(build)
        if isinstance(reply, m.Error):
            raise VistritError(reply.message)
        assert isinstance(reply, m.TaskListResponse)
        return [TaskInfo.of(task, None) for task in reply.tasks]

    def wait_for_workers(self, n: int = 1, timeout: float | None = None) -> list[NodeInfo]:
        """Wait until at least *n* workers are connected (ready for tasks); returns them.
        ``TimeoutError`` after *timeout* seconds (``None``: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(workers := self.workers()) < n:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(workers)} of {n} worker(s) after {timeout:g} s")
            time.sleep(0.05)  # polling: the coordinator pushes no news of workers
        return workers

    def _ask(self, build: Callable[[uuid.UUID], m.Message]) -> m.Message:
        """A read-only request: asked again if the connection is lost before the answer
        (the new leader answers it), until ``request_timeout``."""

        def register() -> tuple[Future[m.Message], m.Message]:
            request_id = uuid.uuid4()
            return self.replies.expect(request_id), build(request_id)

        return self._request(register, retry=True)

    def _request(
        self, register: Callable[[], tuple[Future[m.Message], m.Message]], retry: bool
    ) -> m.Message:
        """Send a request and wait for its answer; *register* says which future the
        answer resolves, and what to send. With *retry*, ask again after a lost
        connection (a cancel is asked once: a second could be answered "already
        cancelled")."""
        deadline = time.monotonic() + self.request_timeout
        while True:
            self._wait_connected()
            with self._lock:
                self._check_open()
                reply, message = register()
            self._send(message)
            try:
                return reply.result(self.request_timeout)
            except concurrent.futures.TimeoutError:
                why = f"no answer from the coordinator within {self.request_timeout:g} s"
                raise TimeoutError(why) from None
            except CoordinatorUnavailable:
                if not retry or self._closed or self._gave_up or time.monotonic() > deadline:
                    raise

    def _send(self, *messages: m.Message) -> None:
        conn = self.session.conn
        try:
            if conn is not None:
                conn.post(list(messages))
        except ConnectionClosed:
            pass  # lost: the reader fails the requests, and resubmits the tasks once back

    def _wait_connected(self) -> None:
        """A request made while the client looks for its coordinator waits for it."""
        self._check_open()
        if not self._connected.wait(self.request_timeout):
            raise TimeoutError(f"no coordinator within {self.request_timeout:g} s")

    def _check_open(self) -> None:
        if self._closed or self._gave_up:
            raise CoordinatorUnavailable("the client is closed or lost its coordinators")

    # -- the session's hooks ----------------------------------------------------------------

    def hello(self, conn: Connection, version: int) -> m.Handshake:
        """The Handshake: a ``Client`` (protocol v2 and up), never given tasks."""
        local = SocketAddr(*conn.local)
        node = introduce(self.id, NodeType.Client, local, self.name, int(time.time()))
        return m.Handshake(node_info=node, protocol_version=version)

    def heartbeat(self) -> m.Heartbeat:
        """The Heartbeat: the coordinator answers it, so the client knows it is there."""
        return m.Heartbeat(
            node_id=self.id,
            timestamp=int(time.time()),
            running_tasks=0,
            state=NodeState.Ready,
            cpu_usage=None,
            memory_usage=None,
        )

    def on_message(self, message: m.Message) -> None:
        """An answer: to a request (by request id), or about a task (by task id)."""
        request_id = getattr(message, "request_id", None)
        if request_id is not None and not isinstance(message, m.TaskSubmit):
            self.replies.answer(request_id, message)
            return
        handler = ON_MESSAGE.get(type(message))
        if handler is not None:
            handler(self, message)

    def on_lost(self, reason: str) -> None:
        """The connection was lost: requests fail at once, task futures wait."""
        self._connected.clear()
        self.replies.fail(CoordinatorUnavailable(reason))

    def on_rejoined(self, conn: Connection) -> list[m.Message | bytes]:
        """Joined again: resubmit every unfinished task, under the same ids.

        Resubmitting is safe because task ids are chosen here: a coordinator that knows a
        task acknowledges it again (and sends its outcome if it has one); one that lost
        it (it was never acknowledged) takes it as new.
        """
        self._connected.set()
        count = len(self.book.unfinished())
        log.info("%s: reconnected; %d unfinished task(s) resubmitted", self.name, count)
        return list(self.book.resubmissions(conn.version >= 4, self.replies.on_answer))

    def on_gave_up(self, reason: str) -> None:
        """No coordinator came back: every request and task future fails."""
        self._gave_up = True
        self._connected.set()  # wakes waiting requests, which then fail
        self._fail_all(CoordinatorUnavailable(f"{reason}; no coordinator came back"))

    def _on_query_response(self, message: m.TaskQueryResponse) -> None:
        self.replies.answer_about(message.task_id, "query", message)
        if self.book.on_query_response(message):
            self._let_go(message.task_id)

    def _on_outcome(self, message: m.TaskOutcome) -> None:
        if self.book.on_outcome(message):
            self._let_go(message.task_id)

    def _let_go(self, task_id: uuid.UUID) -> None:  # we have a large outcome (release.py)
        conn = self.session.conn
        if conn is not None and conn.version >= 4:
            self._send(m.TaskOutcomeAck(task_ids=(task_id,)))

    def _on_cancel_ack(self, message: m.TaskCancelAck) -> None:
        self.replies.answer_about(message.task_id, "cancel", message)

    def _on_error(self, message: m.Error) -> None:
        log.warning("%s: coordinator error %s: %s", self.name, message.code.name, message.message)

    def _fail_all(self, error: Exception) -> None:
        """Fail every request and every task future: the coordinator is gone for good."""
        self.replies.fail(error)
        self.book.fail_all(error)


#: How a client handles a message that answers no request id (anything else is ignored).
#: Outcomes and news of tasks go to the client's book (:mod:`vistrit.taskbook`).
ON_MESSAGE: dict[type[m.Message], Callable[[VistritClient, Any], None]] = {
    m.TaskQueryResponse: VistritClient._on_query_response,
    m.TaskOutcome: VistritClient._on_outcome,
    m.TaskStatus: lambda client, message: client.book.on_status(message),
    m.TaskCancelAck: VistritClient._on_cancel_ack,
    m.Error: VistritClient._on_error,
}


__all__ = [
    "ClusterStatus", "CoordinatorUnavailable", "TaskError", "TaskFuture", "TaskInfo",
    "TaskNotFound", "TaskRejected", "TaskTooLarge", "VistritClient", "VistritError",
]  # fmt: skip
