"""What a client's calls give back: a task's future (:class:`TaskFuture`), what is known
of a task (:class:`TaskInfo`), the cluster's status (:class:`ClusterStatus`), and the
errors the calls raise. :class:`~vistrit.client.VistritClient` makes them; they never
touch the network themselves (a future's ``cancel`` asks its client).

Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vistrit.logic.tasks import FINAL
from vistrit.protocol.errors import ProtocolError
from vistrit.protocol.messages import ClusterStatusResponse
from vistrit.protocol.types import Task, TaskPayload, TaskResult, TaskState
from vistrit.protocol.values import decode_value


class Canceller(Protocol):
    """What a :class:`TaskFuture` needs of its client: a way to cancel its task."""

    def cancel(self, task_id: uuid.UUID) -> bool:
        """Ask the coordinator to cancel the task; True if it accepted."""
        ...


class VistritError(Exception):
    """Base of the client's errors."""


class CoordinatorUnavailable(VistritError, ConnectionError):
    """No coordinator could be reached, or the connection to it was lost."""


class TaskRejected(VistritError):
    """The coordinator refused the submission (an unknown dependency, for example)."""


class TaskNotFound(VistritError, LookupError):
    """The coordinator does not know this task (never submitted, or past retention)."""


class TaskTooLarge(VistritError, ValueError):
    """A task too large to send: its message names the limit (``defaults.ASSIGN_BYTES``)."""


class TaskError(VistritError):
    """The task failed. ``error`` is its error text (every attempt's, when retried).

    When the task's code raised, ``remote_type``, ``remote_message`` and
    ``remote_traceback`` say what it raised, where, and how it got there (the worker logs
    it too). :func:`task_error` makes the error also an instance of the remote exception's
    type when that type is a built-in one, so ``except ValueError:`` works as it would
    with ``concurrent.futures`` (the remote exception itself is never rebuilt: that would
    mean unpickling)."""

    def __init__(
        self,
        task_id: uuid.UUID,
        error: str,
        result: TaskResult | None = None,
        remote: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error
        self.result = result
        remote = remote or {}
        self.remote_type: str | None = _text(remote.get("type"))
        self.remote_message: str | None = _text(remote.get("message"))
        stderr = result.stderr if result is not None else None
        self.remote_traceback: str | None = _text(remote.get("traceback")) or stderr

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_BUILTIN_ERRORS: dict[str, type[TaskError]] = {}

#: A ``concurrent.futures.Future`` cancelled, whose waiters are not told yet (its state).
_CANCELLED_NOT_NOTIFIED = "CANCELLED"


def task_error(
    task_id: uuid.UUID, error: str, result: TaskResult | None, remote: dict[str, Any] | None
) -> TaskError:
    """A :class:`TaskError`; for a remote built-in exception type (``ValueError``,
    ``KeyError``, ...) one that is an instance of that type too."""
    name = _text((remote or {}).get("type")) or ""
    base = getattr(builtins, name, None) if name.isidentifier() else None
    cls: type[TaskError] = TaskError
    if isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
        cls = _BUILTIN_ERRORS.get(name) or TaskError
        if name not in _BUILTIN_ERRORS:
            try:
                cls = type(name, (TaskError, base), {"__module__": __name__})
            except TypeError:  # a built-in whose layout cannot be mixed in
                cls = TaskError
            _BUILTIN_ERRORS[name] = cls
    return cls(task_id, error, result, remote)


@dataclass(frozen=True)
class TaskInfo:
    """A task as the coordinator reports it."""

    id: uuid.UUID
    name: str
    state: str  # Pending, Scheduled, Running, Completed, Failed or Cancelled
    priority: str
    worker: uuid.UUID | None
    progress: int | None
    error: str | None
    output: bytes | None
    task: Task
    result: TaskResult | None
    waiting: str | None = None  # while pending: why no connected worker can run it

    @property
    def finished(self) -> bool:
        """Whether the task reached a final state."""
        return self.state in FINAL

    @property
    def value(self) -> Any:
        """The task's output as its future gives it: a Python value for a ``Call``, else
        the bytes (``None`` before it has one)."""
        if self.output is None or self.state != "Completed":
            return self.output
        return read_output(self.output, kind_of(self.task.payload))

    @classmethod
    def of(cls, task: Task, result: TaskResult | None, waiting: str | None = None) -> TaskInfo:
        """A TaskInfo from the protocol's Task and its result."""
        state = task.state
        return cls(
            id=task.id,
            name=task.name,
            state=state.WIRE_NAME,
            priority=task.priority.name,
            worker=getattr(state, "worker_id", None),
            progress=getattr(state, "progress", None),
            error=getattr(state, "error", None)  # a failure's, or why the data is gone
            or (result.error if result and (not result.success or result.data is None) else None),
            output=result.data if result is not None else None,
            task=task,
            result=result,
            waiting=waiting,
        )


@dataclass(frozen=True)
class ClusterStatus:
    """The cluster's status as a client sees it: counts, the leader's term, who answered."""

    leader_id: uuid.UUID | None
    total_nodes: int
    online_workers: int
    pending_tasks: int
    running_tasks: int
    completed_tasks: int
    failed_tasks: int
    uptime_seconds: int
    term: int = 0  # the leader's term (0: a coordinator that runs alone)
    address: str = ""  # HOST:PORT of the coordinator that answered

    @classmethod
    def of(cls, reply: ClusterStatusResponse, term: int, address: str) -> ClusterStatus:
        """The status from a ``ClusterStatusResponse``, the leader's term and who answered."""
        counts = {n: getattr(reply, n) for n in cls.__dataclass_fields__ if hasattr(reply, n)}
        return cls(**counts, term=term, address=address)


class TaskFuture(concurrent.futures.Future[Any]):
    """The outcome of one task. ``cancel()`` asks the coordinator to cancel the task.

    Its result is what the task returned: for a function submitted by itself (a
    ``Call``), the Python value; for one by name, ``str`` if the data was given as
    ``str``, else ``bytes``. While it runs, ``running()`` is true and ``progress`` holds
    the last percentage its function reported; while no connected worker can run it,
    ``waiting`` says why (both pushed by a v4 coordinator). ``accepted`` is set once a
    coordinator has acknowledged the task: it is recorded, with the guarantees of the
    durability page (``future.accepted.wait(timeout)``)."""

    def __init__(self, client: Canceller, task_id: uuid.UUID, kind: str = "bytes") -> None:
        super().__init__()
        self.client = client
        self.task_id = task_id
        self._accepted: threading.Event | bool = False  # an Event once someone asks
        self.kind = kind  # "value", "text" or "bytes": how the result's bytes are read
        self.progress: int | None = None
        self.waiting: str | None = None
        self._started = False

    @property
    def accepted(self) -> threading.Event:
        """Set once a coordinator has acknowledged the task. (Made when first asked for:
        an Event is a lock and a condition, and most futures are never asked.)"""
        with self._condition:
            if not isinstance(self._accepted, threading.Event):
                event = threading.Event()
                if self._accepted:
                    event.set()
                self._accepted = event
            return self._accepted

    def _accept(self) -> None:
        """The coordinator acknowledged the task."""
        with self._condition:
            if isinstance(self._accepted, threading.Event):
                self._accepted.set()
            else:
                self._accepted = True

    @property
    def text(self) -> bool:
        """Whether the result is given as ``str`` (data submitted as ``str``)."""
        return self.kind == "text"

    def running(self) -> bool:
        """True while a worker runs the task (as last reported)."""
        return self._started and not self.done()

    def cancel(self) -> bool:
        """Cancel the task (pending: at once; running: its worker is told to stop it).

        Returns True if the coordinator accepted; blocks for its answer, so do not call it
        from a done-callback.
        """
        if self.done():
            return super().cancelled()
        if not self.client.cancel(self.task_id):
            return False
        return self._mark_cancelled()

    def _mark_cancelled(self) -> bool:
        if super().cancel():  # (also True if it was cancelled already)
            with self._condition:  # once only: the outcome pushed to the reader thread and
                # the answer to our own TaskCancel both end here, and a second notification
                # is logged by concurrent.futures as CRITICAL ("unexpected state")
                if self._state == _CANCELLED_NOT_NOTIFIED:
                    self.set_running_or_notify_cancel()  # wakes concurrent.futures.wait() too
            return True
        if not self.done():  # marked running by its executor: it ends cancelled all the same
            self.set_exception(concurrent.futures.CancelledError(f"task {self.task_id}"))
        return False

    def _note(self, state: TaskState, progress: int | None, message: str | None) -> None:
        """A pushed ``TaskStatus``: running (with its progress), or waiting, with why."""
        if isinstance(state, TaskState.Running):
            self.waiting = None
            self.progress = progress if progress is not None else state.progress
            if not self._started:
                self._started = True
                self._on_running()
        elif isinstance(state, TaskState.Pending):
            self.waiting = message

    def _on_running(self) -> None:
        """The task started running (a hook for the Executor's futures)."""

    def _settle(self, state: TaskState, result: TaskResult | None) -> None:
        """Resolve from a final state (called by the reader thread)."""
        if self.done():
            return
        if isinstance(state, TaskState.Completed):
            if result is not None and result.data is None and result.error:  # let go (v4)
                self.set_exception(TaskError(self.task_id, f"its result is gone: {result.error}"))
                return
            data = result.data if result is not None and result.data is not None else b""
            try:
                value = read_output(data, self.kind)
            except (ProtocolError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
                self.set_exception(TaskError(self.task_id, f"its result cannot be read: {exc}"))
                return
            self.set_result(value)
        elif isinstance(state, TaskState.Failed):
            remote = remote_error(result) if self.kind == "value" else None
            self.set_exception(task_error(self.task_id, state.error, result, remote))
        elif isinstance(state, TaskState.Cancelled):
            self._mark_cancelled()


def gather(
    futures: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
) -> list[Any]:
    """The results of *futures*, in order; raises the first failure."""
    deadline = None if timeout is None else time.monotonic() + timeout
    results = []
    for future in futures:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        results.append(future.result(left))
    return results


def as_completed(
    futures: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
) -> Iterator[concurrent.futures.Future[Any]]:
    """Yield futures as they finish (``concurrent.futures.as_completed``)."""
    return concurrent.futures.as_completed(list(futures), timeout)


def kind_of(payload: TaskPayload, text: bool = False) -> str:
    """How a task's result bytes are read: ``"value"`` for a ``Call``, else text or bytes."""
    if isinstance(payload, TaskPayload.Call):
        return "value"
    return "text" if text else "bytes"


def read_output(data: bytes, kind: str) -> Any:
    """A result's bytes as its future gives them: a ``ProtocolError`` if a value is
    malformed, a ``UnicodeDecodeError`` if text is not UTF-8 (never garbled in silence:
    submit the data as ``bytes`` to get the output as ``bytes``)."""
    if kind == "value":
        return decode_value(data)
    return data.decode("utf-8") if kind == "text" else data


def remote_error(result: TaskResult | None) -> dict[str, Any] | None:
    """What a failed ``Call`` raised (its type, message and traceback), if it says."""
    if result is None or not result.data:
        return None
    try:
        value = decode_value(result.data)
    except (ProtocolError, ValueError):
        return None
    return value if isinstance(value, dict) else None
