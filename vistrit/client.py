"""``VistritClient``: the SDK, one synchronous class. The CLI is a thin layer over it.

::

    from vistrit import VistritClient

    with VistritClient("localhost:7878") as client:
        future = client.submit("uppercase", "hello", retries=3, timeout=30, priority="high")
        print(future.result())                      # HELLO
        counts = client.map("word_count", ["a b", "c d e"])
        print(client.gather(counts))                # ['2', '3']
        total = client.map_reduce("word_count", ["a b", "c d e"], "sum")
        print(total.result())                       # 5

How it works:

* The client connects to the coordinator that leads, among those of its list (following
  redirects, see :mod:`vistrit.leader`), and handshakes as a ``Client`` (protocol v2 and
  up): it is never given tasks and never listed as a worker.
* Every request carries an id, so many can be in flight on the one connection
  (pipelining): ``submit`` returns at once with a :class:`TaskFuture`; one reader thread
  matches each answer to its request by request id or task id.
* The coordinator sends the outcome of each task the client submitted as soon as it is
  final; the future then resolves: its result is the task's output (``str`` if the data
  was given as ``str``, else ``bytes``), or :class:`TaskError`, or it is cancelled.

If the connection is lost (a coordinator restarts, or the leader fails), the client
finds the leader again and resubmits every task it is still waiting for, under the same
ids; read-only requests cut off are asked again. It heartbeats every second and leaves a
coordinator that has not answered for ``coordinator_timeout`` (a frozen one).

Failures are typed: :class:`TaskError` (the task failed; ``.error`` is its error text),
:class:`TaskRejected` (the coordinator refused the submission), :class:`TaskNotFound`,
:class:`CoordinatorUnavailable` (no coordinator answers, or the connection was lost),
``concurrent.futures.CancelledError`` from ``result()`` of a cancelled task, and
``TimeoutError`` when a wait runs out.

The values the client hands back (:class:`TaskFuture`, :class:`TaskInfo`,
:class:`ClusterStatus`) and its errors live in :mod:`vistrit.results`, and can be imported
from here too.

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from vistrit import defaults
from vistrit.leader import LeaderFinder, NoLeader
from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION
from vistrit.protocol.types import (
    NodeInfo,
    NodeState,
    NodeType,
    SocketAddr,
    Task,
    TaskPayload,
    TaskPriority,
    TaskState,
    introduce,
)
from vistrit.results import (
    ClusterStatus,
    CoordinatorUnavailable,
    TaskError,
    TaskFuture,
    TaskInfo,
    TaskNotFound,
    TaskRejected,
    VistritError,
)
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout, parse_addresses

log = logging.getLogger(__name__)

PRIORITIES = {p.name.lower(): p for p in TaskPriority}


class VistritClient:
    """A connection to a Vistrit cluster (see the module docstring). Thread-safe."""

    def __init__(
        self,
        coordinators: str | Sequence[str] = defaults.COORDINATOR,
        *,
        name: str | None = None,
        request_timeout: float = defaults.REQUEST_TIMEOUT,
        connect_timeout: float = defaults.CONNECT_TIMEOUT,
        reconnect_timeout: float = defaults.RECONNECT_TIMEOUT,
        coordinator_timeout: float = defaults.COORDINATOR_TIMEOUT,
    ) -> None:
        texts = coordinators if isinstance(coordinators, str) else ",".join(coordinators)
        self.addresses = parse_addresses(texts)
        self.finder = LeaderFinder(self.addresses)
        self.coordinator_timeout = coordinator_timeout
        self._last_heard = time.monotonic()
        self._timer: threading.Timer | None = None
        self.id = uuid.uuid4()
        self.name = name or f"client-{os.getpid()}"
        self.request_timeout = request_timeout
        self._lock = threading.Lock()
        self._replies: dict[uuid.UUID, concurrent.futures.Future[m.Message]] = {}
        # Waiters for answers about a task: to TaskQuery, and (apart) to TaskCancel.
        self._by_task: dict[uuid.UUID, list[concurrent.futures.Future[m.Message]]] = {}
        self._cancelling: dict[uuid.UUID, list[concurrent.futures.Future[m.Message]]] = {}
        self._tasks: dict[uuid.UUID, TaskFuture] = {}
        self._submitted: dict[uuid.UUID, Task] = {}  # for resubmission after a reconnect
        self._closed = False
        self._gave_up = False  # the coordinators were lost for good
        self._connected = threading.Event()  # clear while reconnecting
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self._conn = self._connect(connect_timeout)
        self._connected.set()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"{self.name} reader", daemon=True
        )
        self._reader.start()
        self._beat()

    def _connect(self, timeout: float) -> Connection:
        """Connect to the leader (see :mod:`vistrit.leader`). While the coordinators are
        electing one, keep trying for up to *timeout*."""

        def hello(conn: Connection) -> m.Handshake:
            return m.Handshake(node_info=self._node_info(conn), protocol_version=NEWEST_VERSION)

        try:
            conn, _ = self.finder.open(hello, timeout, self.name, patience=timeout)
        except NoLeader as exc:
            raise CoordinatorUnavailable(f"no coordinator leads: {exc}") from exc
        except ConnectionError as exc:
            raise CoordinatorUnavailable(f"no coordinator answered: {exc}") from exc
        self._last_heard = time.monotonic()
        conn.start_writer()  # sends never block the caller; bursts leave in batches
        return conn

    def _node_info(self, conn: Connection) -> NodeInfo:
        local = SocketAddr(*conn.local)
        return introduce(self.id, NodeType.Client, local, self.name, int(time.time()))

    def close(self) -> None:
        """Close the connection; unfinished futures fail with CoordinatorUnavailable."""
        with self._lock:  # a reconnection either sees this, or has set its connection
            if self._closed:
                return
            self._closed = True
            conn = self._conn
        self._connected.set()  # requests waiting for a reconnection fail now
        if self._timer is not None:
            self._timer.cancel()
        try:
            conn.post([m.Disconnect(node_id=self.id, reason="client closing", graceful=True)])
            conn.flush()  # everything posted before the goodbye goes out first
        except ConnectionClosed:
            pass
        conn.close()
        conn.join_writer()
        if self._reader is not threading.current_thread():
            self._reader.join(defaults.SEND_TIMEOUT)
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
        function: str,
        data: str | bytes = b"",
        *,
        retries: int = 0,
        timeout: int = 0,
        priority: str | TaskPriority = "normal",
        tags: Iterable[str] = (),
        after: Iterable[uuid.UUID | TaskFuture | str] = (),
        name: str | None = None,
        task_id: uuid.UUID | None = None,
    ) -> TaskFuture:
        """Run the named function on *data*; returns at once with the task's future.

        *retries*: further attempts after a failure. *timeout*: seconds an attempt may take
        (0: no limit). *priority*: low, normal, high or critical. *tags*: the worker must have
        them all. *after*: tasks (ids or futures) that must complete first. *task_id*: choose
        the id, so that submitting again is idempotent.
        """
        payload = TaskPayload.Data(function=function, data=_to_bytes(data))
        return self._submit(
            payload,
            isinstance(data, str),
            name or function,
            retries,
            timeout,
            priority,
            tags,
            after,
            task_id,
        )

    def submit_compute(self, expression: str, **options: Any) -> TaskFuture:
        """Evaluate arithmetic (``"2+3*4"``) on a worker; the result is its text (``"14"``)."""
        return self._submit(
            TaskPayload.Compute(expression=expression),
            True,
            options.pop("name", expression[:40]),
            **_opts(options),
        )

    def submit_command(self, command: str, args: Sequence[str] = (), **options: Any) -> TaskFuture:
        """Run a program on a worker started with ``--allow-commands``; the result is its stdout."""
        payload = TaskPayload.Command(command=command, args=tuple(args))
        return self._submit(payload, True, options.pop("name", command[:40]), **_opts(options))

    def submit_map(
        self, function: str, chunks: Sequence[str | bytes], **options: Any
    ) -> TaskFuture:
        """One task applying *function* to each chunk; the outputs joined with newlines."""
        payload = TaskPayload.Map(
            function=function, input_chunks=tuple(_to_bytes(c) for c in chunks)
        )
        text = all(isinstance(c, str) for c in chunks)
        return self._submit(payload, text, options.pop("name", f"map {function}"), **_opts(options))

    def submit_reduce(
        self, function: str, inputs: Sequence[str | bytes] = (), **options: Any
    ) -> TaskFuture:
        """Reduce *inputs* (or, if none and ``after=`` is given, those tasks' results)."""
        payload = TaskPayload.Reduce(
            function=function, intermediate_results=tuple(_to_bytes(i) for i in inputs)
        )
        return self._submit(
            payload, True, options.pop("name", f"reduce {function}"), **_opts(options)
        )

    def _submit(
        self,
        payload: TaskPayload,
        text: bool,
        name: str,
        retries: int = 0,
        timeout: int = 0,
        priority: str | TaskPriority = "normal",
        tags: Iterable[str] = (),
        after: Iterable[uuid.UUID | TaskFuture | str] = (),
        task_id: uuid.UUID | None = None,
    ) -> TaskFuture:
        if retries < 0 or timeout < 0:
            raise ValueError("retries and timeout cannot be negative")
        task = Task(
            id=task_id or uuid.uuid4(),
            name=name,
            payload=payload,
            state=TaskState.Pending(),
            priority=_priority(priority),
            max_retries=retries,
            timeout_seconds=timeout,
            tags=tuple(tags),
            created_at=int(time.time()),
            submitted_by=self.id,
            dependencies=tuple(_task_id(item) for item in after),
        )
        future = TaskFuture(self, task.id, text)
        request_id = uuid.uuid4()
        ack: concurrent.futures.Future[m.Message] = concurrent.futures.Future()
        ack.add_done_callback(lambda done: self._on_submit_ack(future, done))
        with self._lock:
            self._check_open()
            self._tasks[task.id] = future
            self._submitted[task.id] = task
            self._replies[request_id] = ack
        self._send(m.TaskSubmit(task=task, request_id=request_id))
        return future

    def _on_submit_ack(
        self, future: TaskFuture, done: concurrent.futures.Future[m.Message]
    ) -> None:
        if done.exception() is not None:
            return  # the connection was lost: the task is resubmitted when it comes back
        ack = done.result()
        if isinstance(ack, m.TaskSubmitAck) and not ack.accepted and not future.done():
            with self._lock:
                self._tasks.pop(future.task_id, None)
                self._submitted.pop(future.task_id, None)
            future.set_exception(TaskRejected(ack.reason or "the coordinator refused the task"))

    # -- many tasks -------------------------------------------------------------------------

    def map(self, function: str, items: Iterable[str | bytes], **options: Any) -> list[TaskFuture]:
        """One task per item; returns their futures, in order."""
        return [self.submit(function, item, **options) for item in items]

    def gather(
        self, futures: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
    ) -> list[Any]:
        """The results of *futures*, in order; raises the first failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results = []
        for future in futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            results.append(future.result(left))
        return results

    @staticmethod
    def as_completed(
        futures: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
    ) -> Iterator[concurrent.futures.Future[Any]]:
        """Yield futures as they finish (``concurrent.futures.as_completed``)."""
        return concurrent.futures.as_completed(list(futures), timeout)

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
        key = _task_id(task_id)
        reply = self._ask_about(key, m.TaskQuery(task_id=key))
        assert isinstance(reply, m.TaskQueryResponse)
        if not reply.found or reply.task is None:
            raise TaskNotFound(f"no task {key}")
        return TaskInfo.of(reply.task, reply.result)

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
        key = _task_id(task_id)
        reply = self._ask_about(
            key,
            m.TaskCancel(task_id=key, requested_by=self.id, reason="cancelled by client"),
            self._cancelling,
        )
        assert isinstance(reply, m.TaskCancelAck)
        return reply.accepted

    def cluster_status(self) -> ClusterStatus:
        reply = self._ask(lambda rid: m.ClusterStatusRequest(request_id=rid))
        assert isinstance(reply, m.ClusterStatusResponse)
        return ClusterStatus(
            leader_id=reply.leader_id,
            total_nodes=reply.total_nodes,
            online_workers=reply.online_workers,
            pending_tasks=reply.pending_tasks,
            running_tasks=reply.running_tasks,
            completed_tasks=reply.completed_tasks,
            failed_tasks=reply.failed_tasks,
            uptime_seconds=reply.uptime_seconds,
            term=self.finder.term,
            address="{}:{}".format(*self.finder.joined),
        )

    def workers(self) -> list[NodeInfo]:
        reply = self._ask(lambda rid: m.WorkerListRequest(request_id=rid))
        assert isinstance(reply, m.WorkerListResponse)
        return list(reply.workers)

    def tasks(self, limit: int = 100) -> list[TaskInfo]:
        """The newest tasks the coordinator remembers (payload bytes left out)."""
        reply = self._ask(lambda rid: m.TaskListRequest(request_id=rid, limit=limit))
        assert isinstance(reply, m.TaskListResponse)
        return [TaskInfo.of(task, None) for task in reply.tasks]

    def _ask(self, build: Callable[[uuid.UUID], m.Message]) -> m.Message:
        """A read-only request: asked again if the connection is lost before the answer
        (the new leader answers it), until ``request_timeout``."""

        def register(reply: concurrent.futures.Future[m.Message]) -> m.Message:
            request_id = uuid.uuid4()
            self._replies[request_id] = reply
            return build(request_id)

        return self._request(register, retry=True)

    def _ask_about(
        self,
        task_id: uuid.UUID,
        message: m.Message,
        waiters: dict[uuid.UUID, list[concurrent.futures.Future[m.Message]]] | None = None,
    ) -> m.Message:
        """A request answered by task id (a query, read-only, asked again like :meth:`_ask`;
        a cancel, asked once)."""

        def register(reply: concurrent.futures.Future[m.Message]) -> m.Message:
            (self._by_task if waiters is None else waiters).setdefault(task_id, []).append(reply)
            return message

        return self._request(register, retry=waiters is None)

    def _request(
        self,
        register: Callable[[concurrent.futures.Future[m.Message]], m.Message],
        retry: bool,
    ) -> m.Message:
        deadline = time.monotonic() + self.request_timeout
        while True:
            reply: concurrent.futures.Future[m.Message] = concurrent.futures.Future()
            self._wait_connected()
            with self._lock:
                self._check_open()
                message = register(reply)
            self._send(message)
            try:
                return self._wait(reply)
            except CoordinatorUnavailable:
                if not retry or self._closed or self._gave_up or time.monotonic() > deadline:
                    raise

    def _wait(self, reply: concurrent.futures.Future[m.Message]) -> m.Message:
        try:
            return reply.result(self.request_timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"no answer from the coordinator within {self.request_timeout:g} s"
            ) from None

    def _send(self, message: m.Message) -> None:
        try:
            self._conn.post([message])
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

    # -- the reader -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Read until the connection ends; then reconnect and resubmit, or give up."""
        while True:
            reason = self._read_until_lost()
            self._conn.close()
            if self._closed:
                return
            log.warning("%s: %s; reconnecting", self.name, reason)
            self._connected.clear()
            self._fail_requests(CoordinatorUnavailable(reason))  # tasks wait, requests don't
            if not self._reconnect():
                if self.closed:
                    return  # closed meanwhile
                self._gave_up = True
                self._connected.set()  # wakes waiting requests, which then fail
                self._fail_all(CoordinatorUnavailable(f"{reason}; no coordinator came back"))
                return
            self._connected.set()

    def _read_until_lost(self) -> str:
        try:
            while True:
                message = self._conn.receive()
                if message is None:
                    return "the coordinator closed the connection"
                self._last_heard = time.monotonic()
                deposed = self.finder.deposed(message)
                if deposed is not None:
                    return deposed
                self._dispatch(message)
        except (ProtocolError, ConnectionClosed, PeerTimeout) as exc:
            return f"connection to the coordinator failed: {exc}"
        except Exception:  # a thread boundary: log, then reconnect
            log.exception("%s: reader failed", self.name)
            return "internal error in the client's reader"

    def _reconnect(self) -> bool:
        """Find a coordinator again (with backoff), then resubmit every unfinished task.

        Resubmitting is safe because task ids are chosen here: a coordinator that knows a
        task acknowledges it again (and sends its outcome if it has one); one that lost
        it (it was never acknowledged) takes it as new.
        """
        deadline = time.monotonic() + self.reconnect_timeout
        pause = defaults.RECONNECT_BACKOFF
        while not self._closed and time.monotonic() < deadline:
            try:
                conn = self._connect(self.connect_timeout)
            except CoordinatorUnavailable:
                time.sleep(pause * (0.5 + random.random() / 2))  # backoff between attempts
                pause = min(defaults.RECONNECT_BACKOFF_MAX, pause * 2)
                continue
            with self._lock:
                if self.closed:  # closed meanwhile: this connection is not wanted
                    conn.close()
                    return False
                self._conn = conn
                unfinished = [self._submitted[t] for t in self._tasks if t in self._submitted]
            for task in unfinished:
                conn.post([m.TaskSubmit(task=task, request_id=uuid.uuid4())])
            log.info(
                "%s: reconnected; %d unfinished task(s) resubmitted", self.name, len(unfinished)
            )
            return True
        return False

    def _beat(self) -> None:
        """Every heartbeat interval: tell the coordinator we are here (it answers), and
        leave a coordinator that has not answered for ``coordinator_timeout`` (frozen, or
        cut off): the reader then looks for the leader again."""
        if self._closed:
            return
        conn = self._conn
        silent = time.monotonic() - self._last_heard
        if silent > self.coordinator_timeout and not conn.closed:
            log.warning("%s: no answer from the coordinator for %.1f s", self.name, silent)
            conn.close()
        elif not conn.closed:
            beat = m.Heartbeat(
                node_id=self.id,
                timestamp=int(time.time()),
                running_tasks=0,
                state=NodeState.Ready,
                cpu_usage=None,
                memory_usage=None,
            )
            try:
                conn.post([beat])
            except ConnectionClosed:
                pass
        self._timer = threading.Timer(defaults.HEARTBEAT_INTERVAL, self._beat)
        self._timer.name = f"{self.name} heartbeat"
        self._timer.daemon = True
        self._timer.start()

    def _fail_requests(self, error: Exception) -> None:
        """Fail every request waiting for an answer (task futures are left waiting)."""
        with self._lock:
            waiting: list[concurrent.futures.Future[Any]] = list(self._replies.values())
            for groups in (self._by_task, self._cancelling):
                for group in groups.values():
                    waiting += group
                groups.clear()
            self._replies.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    def _dispatch(self, message: m.Message) -> None:
        request_id = getattr(message, "request_id", None)
        if request_id is not None and not isinstance(message, m.TaskSubmit):
            with self._lock:
                waiter = self._replies.pop(request_id, None)
            if waiter is not None:
                waiter.set_result(message)
            return
        if isinstance(message, m.TaskQueryResponse):
            with self._lock:
                waiters = self._by_task.pop(message.task_id, [])
                future = self._tasks.get(message.task_id)
                final = message.task is not None and message.task.state.WIRE_NAME in (
                    "Completed",
                    "Failed",
                    "Cancelled",
                )
                if future is not None and (final or not message.found):
                    del self._tasks[message.task_id]
                    self._submitted.pop(message.task_id, None)
            for waiter in waiters:
                waiter.set_result(message)
            if future is not None and message.task is not None and final:
                future._settle(message.task.state, message.result)
            elif future is not None and not message.found:
                future.set_exception(TaskNotFound(f"no task {message.task_id}"))
        elif isinstance(message, m.TaskOutcome):
            with self._lock:
                future = self._tasks.pop(message.task_id, None)
                self._submitted.pop(message.task_id, None)
            if future is not None:
                future._settle(message.state, message.result)
        elif isinstance(message, m.TaskCancelAck):
            with self._lock:
                waiters = self._cancelling.pop(message.task_id, [])
            for waiter in waiters:
                waiter.set_result(message)
        elif isinstance(message, m.Error):
            log.warning(
                "%s: coordinator error %s: %s", self.name, message.code.name, message.message
            )

    def _fail_all(self, error: Exception) -> None:
        """Fail every request and every task future: the coordinator is gone for good."""
        self._fail_requests(error)
        with self._lock:
            waiting = list(self._tasks.values())
            self._tasks.clear()
            self._submitted.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)


def _to_bytes(data: str | bytes) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"task data must be str or bytes, not {type(data).__name__}")


def _priority(value: str | TaskPriority) -> TaskPriority:
    if isinstance(value, TaskPriority):
        return value
    try:
        return PRIORITIES[str(value).lower()]
    except KeyError:
        raise ValueError(
            f"unknown priority {value!r}; choose from {', '.join(PRIORITIES)}"
        ) from None


def _task_id(value: uuid.UUID | TaskFuture | str) -> uuid.UUID:
    if isinstance(value, TaskFuture):
        return value.task_id
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"not a task id: {value!r}") from None


def _opts(options: dict[str, Any]) -> dict[str, Any]:
    allowed = {"retries", "timeout", "priority", "tags", "after", "task_id"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")
    return options


__all__ = [
    "ClusterStatus",
    "CoordinatorUnavailable",
    "TaskError",
    "TaskFuture",
    "TaskInfo",
    "TaskNotFound",
    "TaskRejected",
    "VistritClient",
    "VistritError",
]
