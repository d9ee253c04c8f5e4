"""The task state machine, as a table, and the coordinator's record of each task.

A task moves through the v1 ``TaskState`` s. Every move is an *event*, named for what
happened, applied to a :class:`TaskRecord` by one of its methods (``assigned``,
``started``, ``completed``, ...); :data:`TRANSITIONS` lists every legal (state, event)
pair and where it leads, and is the only way a record's state changes. An event not in
the table raises :class:`IllegalTransition`, which the coordinator logs and ignores: that
is how a duplicate or late report is refused (a result for a task already completed, a
status for a cancelled one).

==========  ==============  ========================================================
state       event           next state, and when it happens
==========  ==============  ========================================================
Pending     assigned        Scheduled: the scheduler gave it to a worker
Pending     cancelled       Cancelled: a client cancelled it before it ran
Pending     failed          Failed: a dependency failed or was cancelled
Pending     completed       Completed: a late result from a worker thought lost, or
                            the leader's record of its outcome (replication, replay)
Scheduled   started         Running: the worker accepted it or reported it running
Scheduled   refused         Pending: the worker refused it; it goes to another worker
Scheduled   worker lost     Pending: the worker went away before running it
Running     progressed      Running: a progress report
Running     worker lost     Pending: the worker went away while running it
Running     attempt failed  Pending: the attempt failed and retries are left
==========  ==============  ========================================================

and from Scheduled or Running: ``completed`` to Completed, ``failed`` to Failed,
``attempt failed`` to Pending, ``cancelled`` to Cancelled. Completed, Failed and
Cancelled are final (:data:`FINAL`).

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.packed`.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from vistrit.protocol.types import Task, TaskPayload, TaskResult, TaskState

# TaskState variants by name, so the table reads as the docs do.
PENDING, SCHEDULED, RUNNING = "Pending", "Scheduled", "Running"
COMPLETED, FAILED, CANCELLED = "Completed", "Failed", "Cancelled"
#: The final states: a task in one of them never changes again.
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})
#: The one Pending state every waiting task shares (states are frozen: sharing it saves
#: an object a task).
PENDING_STATE = TaskState.Pending()


def as_pending(task: Task) -> Task:
    """*task* as a new task is recorded: Pending. The same object if it says so already, as
    every client's does (a copy, field by field, would cost about 3 µs a task)."""
    if type(task.state) is TaskState.Pending:
        return task
    return dataclasses.replace(task, state=PENDING_STATE)


#: No worker: what most tasks are excluded from (one object, not one made per placement).
NOBODY: frozenset[uuid.UUID] = frozenset()
#: Every state's name, in the order of the protocol's ``TaskState`` variants.
STATES = (PENDING, SCHEDULED, RUNNING, COMPLETED, FAILED, CANCELLED)

#: (state, event) -> next state. The one source of the state diagram in the docs.
TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, "assigned"): SCHEDULED,
    (PENDING, "cancelled"): CANCELLED,
    (PENDING, "failed"): FAILED,
    (PENDING, "completed"): COMPLETED,
    (SCHEDULED, "started"): RUNNING,
    (SCHEDULED, "refused"): PENDING,
    (SCHEDULED, "worker lost"): PENDING,
    (SCHEDULED, "attempt failed"): PENDING,
    (SCHEDULED, "completed"): COMPLETED,
    (SCHEDULED, "failed"): FAILED,
    (SCHEDULED, "cancelled"): CANCELLED,
    (RUNNING, "progressed"): RUNNING,
    (RUNNING, "worker lost"): PENDING,
    (RUNNING, "attempt failed"): PENDING,
    (RUNNING, "completed"): COMPLETED,
    (RUNNING, "failed"): FAILED,
    (RUNNING, "cancelled"): CANCELLED,
}

#: The event that records an outcome decided elsewhere, by the final state it reached.
SETTLED_BY = {COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled"}

#: The events that put a task back in the queue.
REQUEUED_BY = frozenset({"refused", "worker lost", "attempt failed"})


_second = 0  # the last whole second handed out (see whole_second)


def whole_second(now: float) -> int:
    """``int(now)``, as the same object for every call within one second: a finished task
    keeps the second it ended at, and thousands that end in the same second share it
    (32 bytes each). A race between threads only costs one object more."""
    global _second
    last, second = _second, int(now)
    if second == last:
        return last
    _second = second
    return second


class IllegalTransition(Exception):
    """An event that the task's current state does not allow (a late or duplicate report)."""


@dataclass(eq=False, slots=True)  # slots: no per-record __dict__ (about 100 bytes each)
class TaskRecord:
    """What the coordinator knows about one task. Mutable; owned by the coordinator's lock.

    ``sequence`` is the submission order (FIFO within a priority). ``attempts`` counts
    assignments that ended in a run (not rejections); ``errors`` keeps each failed
    attempt's error. ``excluded`` maps each worker that refused this task to the time
    until which it is not asked again (a refusal may be passing: a full worker).
    The state changes only through the event methods (``assigned`` ... ``settle``).
    """

    task: Task
    sequence: int
    submitted_at: float
    client: uuid.UUID | None = None
    state: TaskState = PENDING_STATE
    #: The outcome's result (read it as ``result``); once the record is compacted, only the
    #: data of a plain success, whose other fields its Completed state holds.
    kept: TaskResult | bytes | None = None
    attempts: int = 0
    #: (Tuples and None where most tasks have nothing: an empty list is 56 bytes, an empty
    #: dict 64, and every remembered task would carry them.)
    errors: tuple[str, ...] = ()
    excluded: dict[uuid.UUID, float] | None = None
    #: When the current attempt must have finished (``timeout_seconds`` after it started).
    deadline: float | None = None
    #: Workers lost while running this task (see ``defaults.MAX_LOST_WORKERS``).
    lost_workers: int = 0
    #: Whether the worker it is assigned to has acknowledged the assignment.
    acknowledged: bool = False
    #: Every worker it was ever assigned to: only they may report on it. (A tuple: most
    #: tasks have one, and an empty set would cost 216 bytes per remembered task.)
    tried: tuple[uuid.UUID, ...] = ()
    finished_at: float | None = None
    #: While pending: why no connected worker can run it (None: one can, when free).
    waiting: str | None = None

    @property
    def id(self) -> uuid.UUID:
        """The task's id, chosen by its client."""
        return self.task.id

    @property
    def result(self) -> TaskResult | None:
        """The outcome's result, as the worker (or the leader) sent it; None before."""
        kept = self.kept
        if not isinstance(kept, bytes):
            return kept
        state = self.state
        assert isinstance(state, TaskState.Completed)  # compact() checked, and it is final
        return TaskResult(
            task_id=self.task.id,
            success=True,
            data=kept,
            error=None,
            exit_code=None,
            duration_ms=state.duration_ms,
            worker_id=state.worker_id,
            stdout=None,
            stderr=None,
        )

    @result.setter
    def result(self, result: TaskResult | None) -> None:
        """Record the outcome's result (whole, until the record is compacted)."""
        self.kept = result

    def compact(self) -> None:
        """A finished task, made smaller for the rest of its retention: what its state
        already says is not kept twice (see :meth:`TaskStore.compact`)."""
        if len(self.tried) == 1 and self.tried[0] == self.worker:
            self.tried = ()  # the worker it ended on says as much (48 bytes less)
        data = self.plain_data()
        if data is not None:
            self.kept = data

    def plain_data(self) -> bytes | None:
        """The result's data, if the result says nothing more than that and what the
        Completed state says (a plain success); None otherwise."""
        state, result = self.state, self.kept
        if type(result) is bytes:
            return result  # compacted already
        if (
            isinstance(result, TaskResult)
            and isinstance(state, TaskState.Completed)
            and result.data is not None
            and (result.success, result.error, result.exit_code, result.stdout, result.stderr)
            == (True, None, None, None, None)
            and (result.task_id, result.worker_id, result.duration_ms)
            == (self.task.id, state.worker_id, state.duration_ms)
        ):
            return result.data
        return None

    @property
    def worker(self) -> uuid.UUID | None:
        """The worker the task is assigned to, runs on, or ended on: read from its state."""
        worker: uuid.UUID | None = getattr(self.state, "worker_id", None)
        return worker

    def excluded_at(self, now: float) -> frozenset[uuid.UUID]:
        """The workers not to offer this task to at *now*."""
        if not self.excluded:
            return NOBODY
        return frozenset(w for w, until in self.excluded.items() if until > now)

    def exclude(self, worker_id: uuid.UUID, until: float) -> None:
        """Do not offer this task to *worker_id* before *until* (it refused it)."""
        if self.excluded is None:
            self.excluded = {}
        self.excluded[worker_id] = until

    @property
    def status(self) -> str:
        """The state's name: Pending, Scheduled, Running, Completed, Failed or Cancelled."""
        return self.state.WIRE_NAME

    @property
    def finished(self) -> bool:
        """Whether the task reached a final state."""
        return self.status in FINAL

    def history(self) -> str:
        """Every failed attempt's error, numbered when there were several."""
        if len(self.errors) == 1:
            return self.errors[0]
        return "; ".join(f"attempt {n}: {error}" for n, error in enumerate(self.errors, 1))

    # -- the events -------------------------------------------------------------------------

    def assigned(self, worker_id: uuid.UUID, now: float) -> None:
        """The scheduler gave the task to *worker_id*."""
        self._move("assigned", TaskState.Scheduled(worker_id=worker_id), now)
        if worker_id not in self.tried:
            self.tried += (worker_id,)

    def started(
        self, worker_id: uuid.UUID, started_at: int, progress: int | None, now: float
    ) -> None:
        """The worker runs the task (a first report), or reports its progress."""
        event = "progressed" if self.status == RUNNING else "started"
        running = TaskState.Running(worker_id=worker_id, started_at=started_at, progress=progress)
        self._move(event, running, now)

    def requeued(self, event: str, now: float) -> None:
        """Back to the queue, by one of :data:`REQUEUED_BY`."""
        if event not in REQUEUED_BY:
            raise ValueError(f"{event!r} does not requeue a task")
        self._move(event, PENDING_STATE, now)

    def completed(self, worker_id: uuid.UUID, duration_ms: int, now: float) -> None:
        """The worker reported success."""
        done = TaskState.Completed(
            worker_id=worker_id, completed_at=whole_second(now), duration_ms=duration_ms
        )
        self._move("completed", done, now)

    def failed(self, error: str, now: float) -> None:
        """The task failed for good: no retries left, a dependency failed, or poison."""
        failed = TaskState.Failed(
            worker_id=self.worker,
            error=error,
            failed_at=whole_second(now),
            retries=max(0, self.attempts - 1),
        )
        self._move("failed", failed, now)

    def cancelled(self, now: float) -> None:
        """A client cancelled the task."""
        self._move("cancelled", TaskState.Cancelled(cancelled_at=whole_second(now)), now)

    def settle(self, state: TaskState, result: TaskResult | None, now: float) -> None:
        """Record an outcome decided elsewhere (the leader's journal, replayed here)."""
        event = SETTLED_BY.get(state.WIRE_NAME)
        if event is None:
            raise IllegalTransition(f"task {self.id}: {state.WIRE_NAME} is not an outcome")
        self._move(event, state, now)
        self.result = result

    def _move(self, event: str, state: TaskState, now: float) -> None:
        """The one place a state changes: by the table, or not at all."""
        expected = TRANSITIONS.get((self.status, event))
        if expected is None:
            raise IllegalTransition(f"task {self.id}: {event!r} is not allowed when {self.status}")
        if expected != state.WIRE_NAME:
            raise AssertionError(f"{event} leads to {expected}, not {state.WIRE_NAME}")
        self.state = state
        self.waiting = None  # looked at again while it is pending
        if expected in FINAL:
            self.finished_at = now

    def snapshot(self) -> Task:
        """The task as the protocol shows it: its declaration with the current state."""
        return dataclasses.replace(self.task, state=self.state)

    def with_payload(self, payload: TaskPayload) -> Task:
        """The task with its current state and another payload (a summary without bytes)."""
        return dataclasses.replace(self.task, state=self.state, payload=payload)
