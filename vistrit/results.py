"""What a client's calls give back: a task's future (:class:`TaskFuture`), what is known
of a task (:class:`TaskInfo`), the cluster's status (:class:`ClusterStatus`), and the
errors the calls raise. :class:`~vistrit.client.VistritClient` makes them; they never
touch the network themselves (a future's ``cancel`` asks its client).

Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from vistrit.logic.tasks import FINAL
from vistrit.protocol.types import Task, TaskResult, TaskState


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


class TaskError(VistritError):
    """The task failed. ``error`` is its error text (every attempt's, when retried)."""

    def __init__(self, task_id: uuid.UUID, error: str, result: TaskResult | None = None) -> None:
        super().__init__(f"task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error
        self.result = result


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

    @property
    def finished(self) -> bool:
        """Whether the task reached a final state."""
        return self.state in FINAL

    @classmethod
    def of(cls, task: Task, result: TaskResult | None) -> TaskInfo:
        """A TaskInfo from the protocol's Task and its result."""
        state = task.state
        return cls(
            id=task.id,
            name=task.name,
            state=state.WIRE_NAME,
            priority=task.priority.name,
            worker=getattr(state, "worker_id", None),
            progress=getattr(state, "progress", None),
            error=getattr(state, "error", None)
            or (result.error if result and not result.success else None),
            output=result.data if result is not None else None,
            task=task,
            result=result,
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


class TaskFuture(concurrent.futures.Future[Any]):
    """The outcome of one task. ``cancel()`` asks the coordinator to cancel the task."""

    def __init__(self, client: Canceller, task_id: uuid.UUID, text: bool) -> None:
        super().__init__()
        self.client = client
        self.task_id = task_id
        self.text = text

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
        return super().cancel()

    def _settle(self, state: TaskState, result: TaskResult | None) -> None:
        """Resolve from a final state (called by the reader thread)."""
        if self.done():
            return
        if isinstance(state, TaskState.Completed):
            data = result.data if result is not None and result.data is not None else b""
            self.set_result(data.decode("utf-8", "replace") if self.text else data)
        elif isinstance(state, TaskState.Failed):
            self.set_exception(TaskError(self.task_id, state.error, result))
        elif isinstance(state, TaskState.Cancelled):
            self._mark_cancelled()
