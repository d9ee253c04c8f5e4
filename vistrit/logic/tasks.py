"""The task state machine, as a table, and the coordinator's record of each task.

A task moves through the v1 ``TaskState`` s. Every move is an *event* applied to a
:class:`TaskRecord`; :data:`TRANSITIONS` lists every legal (state, event) pair and where it
leads. An event not in the table raises :class:`IllegalTransition`, which the coordinator
logs and ignores: that is how a duplicate or late report is refused (a result for a task
already completed, a status for a cancelled one).

=========  ==========  ===========================================================
state      event       next state, and when it happens
=========  ==========  ===========================================================
Pending    assign      Scheduled: the scheduler gave it to a worker
Pending    cancel      Cancelled: a client cancelled it before it ran
Pending    fail        Failed: a dependency failed or was cancelled
Scheduled  start       Running: the worker accepted it or reported it running
Scheduled  reject      Pending: the worker refused it; it goes to another worker
Scheduled  lose        Pending: the worker went away before running it
Running    start       Running: a progress report
Running    lose        Pending: the worker went away while running it
Running    retry       Pending: the attempt failed and retries are left
=========  ==========  ===========================================================

and from Scheduled or Running: ``complete`` to Completed, ``fail`` to Failed, ``retry``
to Pending, ``cancel`` to Cancelled. Completed, Failed and Cancelled are final.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.registry`.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

from vistrit.protocol.types import Task, TaskPayload, TaskResult, TaskState

# TaskState variants by name, so the table reads as the docs do.
PENDING, SCHEDULED, RUNNING = "Pending", "Scheduled", "Running"
COMPLETED, FAILED, CANCELLED = "Completed", "Failed", "Cancelled"
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})

#: (state, event) -> next state. The one source of the state diagram in the docs.
TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, "assign"): SCHEDULED,
    (PENDING, "cancel"): CANCELLED,
    (PENDING, "fail"): FAILED,
    (SCHEDULED, "start"): RUNNING,
    (SCHEDULED, "reject"): PENDING,
    (SCHEDULED, "lose"): PENDING,
    (SCHEDULED, "retry"): PENDING,
    (SCHEDULED, "complete"): COMPLETED,
    (SCHEDULED, "fail"): FAILED,
    (SCHEDULED, "cancel"): CANCELLED,
    (RUNNING, "start"): RUNNING,
    (RUNNING, "lose"): PENDING,
    (RUNNING, "retry"): PENDING,
    (RUNNING, "complete"): COMPLETED,
    (RUNNING, "fail"): FAILED,
    (RUNNING, "cancel"): CANCELLED,
}


class IllegalTransition(Exception):
    """An event that the task's current state does not allow (a late or duplicate report)."""


@dataclass(eq=False)
class TaskRecord:
    """What the coordinator knows about one task. Mutable; owned by the coordinator's lock.

    ``sequence`` is the submission order (FIFO within a priority). ``attempts`` counts
    assignments that ended in a run (not rejections); ``errors`` keeps each failed
    attempt's error. ``excluded`` maps each worker that refused this task to the time
    until which it is not asked again (a refusal may be passing: a full worker).
    """

    task: Task
    sequence: int
    submitted_at: float
    client: uuid.UUID | None = None
    state: TaskState = field(default_factory=lambda: TaskState.Pending())
    result: TaskResult | None = None
    worker: uuid.UUID | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    excluded: dict[uuid.UUID, float] = field(default_factory=dict)
    #: When the current attempt must have finished (``timeout_seconds`` after it started).
    deadline: float | None = None
    #: Workers lost while running this task (see ``defaults.MAX_LOST_WORKERS``).
    lost_workers: int = 0
    #: Whether the worker it is assigned to has acknowledged the assignment.
    acknowledged: bool = False
    finished_at: float | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.task.id

    def excluded_at(self, now: float) -> frozenset[uuid.UUID]:
        """The workers not to offer this task to at *now*."""
        return frozenset(w for w, until in self.excluded.items() if until > now)

    @property
    def status(self) -> str:
        """The state's name: Pending, Scheduled, Running, Completed, Failed or Cancelled."""
        return self.state.WIRE_NAME

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def apply(self, event: str, state: TaskState, now: float) -> None:
        """Move to *state* by *event*; raises :class:`IllegalTransition` if not allowed."""
        expected = TRANSITIONS.get((self.status, event))
        if expected is None:
            raise IllegalTransition(f"task {self.id}: {event!r} is not allowed when {self.status}")
        if expected != state.WIRE_NAME:
            raise AssertionError(f"{event} leads to {expected}, not {state.WIRE_NAME}")
        self.state = state
        if expected in FINAL:
            self.finished_at = now
        if expected == PENDING:
            self.worker = None

    def snapshot(self) -> Task:
        """The task as the protocol shows it: its declaration with the current state."""
        return dataclasses.replace(self.task, state=self.state)

    def with_payload(self, payload: TaskPayload) -> Task:
        return dataclasses.replace(self.task, state=self.state, payload=payload)


class TaskStore:
    """Every task the coordinator remembers, by id, with counters that outlive retention."""

    def __init__(self) -> None:
        self.records: dict[uuid.UUID, TaskRecord] = {}
        self.completed_total = 0
        self.failed_total = 0
        self._sequence = 0

    def add(self, task: Task, now: float, client: uuid.UUID | None) -> TaskRecord:
        self._sequence += 1
        record = TaskRecord(task=task, sequence=self._sequence, submitted_at=now, client=client)
        self.records[task.id] = record
        return record

    def get(self, task_id: uuid.UUID) -> TaskRecord | None:
        return self.records.get(task_id)

    def count_final(self, record: TaskRecord) -> None:
        if record.status == COMPLETED:
            self.completed_total += 1
        elif record.status in (FAILED, CANCELLED):
            self.failed_total += 1

    def count(self, *states: str) -> int:
        return sum(1 for record in self.records.values() if record.status in states)

    def newest(self, limit: int) -> list[TaskRecord]:
        ordered = sorted(self.records.values(), key=lambda r: r.sequence, reverse=True)
        return ordered[:limit]

    def purge(self, now: float, retention: float) -> list[uuid.UUID]:
        """Forget finished tasks whose retention has ended; returns their ids."""
        expired = [
            task_id
            for task_id, record in self.records.items()
            if record.finished_at is not None and now - record.finished_at >= retention
        ]
        for task_id in expired:
            del self.records[task_id]
        return expired
