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

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.registry`.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import Counter, deque
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
        state, result = self.state, self.kept
        if len(self.tried) == 1 and self.tried[0] == self.worker:
            self.tried = ()  # the worker it ended on says as much (48 bytes less)
        if (
            isinstance(result, TaskResult)
            and isinstance(state, TaskState.Completed)
            and result.data is not None
            and (result.success, result.error, result.exit_code, result.stdout, result.stderr)
            == (True, None, None, None, None)
            and (result.task_id, result.worker_id, result.duration_ms)
            == (self.task.id, state.worker_id, state.duration_ms)
        ):
            self.kept = result.data

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


class TaskStore:
    """Every task the coordinator remembers, by id, with counters that outlive retention."""

    def __init__(self) -> None:
        self.records: dict[uuid.UUID, TaskRecord] = {}
        self.completed_total = 0
        self.failed_total = 0
        self._sequence = 0
        #: For each client: its unfinished tasks, and the bytes remembered for it (inputs,
        #: and outputs until their retention ends). What its quotas are measured against.
        self.open_by_client: Counter[uuid.UUID] = Counter()
        self.bytes_by_client: Counter[uuid.UUID] = Counter()
        #: The bytes of inputs and results remembered, all tasks together.
        self.retained_total = 0
        #: Finished tasks in the order they finished: the purge reads from the oldest
        #: and stops at the first one to keep, never scanning every record.
        self._finished: deque[uuid.UUID] = deque()
        #: For each task that unfinished tasks depend on: how many (a Reduce is fed its
        #: dependencies' results when it runs, so those are never let go before).
        self.depended_on: Counter[uuid.UUID] = Counter()
        #: How many of the newest finished tasks are not compacted yet.
        self._fresh = 0

    def add(self, task: Task, now: float, client: uuid.UUID | None) -> TaskRecord:
        """Remember a new task (Pending), next in submission order."""
        self._sequence += 1
        record = TaskRecord(task=task, sequence=self._sequence, submitted_at=now, client=client)
        self.records[task.id] = record
        self._count_for(record, 1)
        self.retained_total += payload_bytes(task.payload)
        self.depended_on.update(task.dependencies)
        return record

    def adopt(self, record: TaskRecord, client: uuid.UUID) -> None:
        """A client resubmitted a task that had none (it was replayed): it is its client now."""
        record.client = client
        self._count_for(record, 1)

    def over_quota(
        self, client: uuid.UUID, task: Task, max_open: int, max_bytes: int
    ) -> str | None:
        """Why *client* may not add *task* (one of its quotas is full), or None."""
        if self.open_by_client[client] >= max_open:
            return f"quota: {max_open} unfinished tasks per client; wait for some to finish"
        retained = self.bytes_by_client[client] + payload_bytes(task.payload)
        if retained > max_bytes:
            return (
                f"quota: {max_bytes} bytes of inputs and results kept per client "
                f"({retained} with this task); collect or wait for older results"
            )
        return None

    def _count_for(self, record: TaskRecord, sign: int) -> None:
        """Count *record* for its client (+1) or stop counting it (-1)."""
        if record.client is None:
            return
        if not record.finished:
            self.open_by_client[record.client] += sign
        self.bytes_by_client[record.client] += sign * retained_bytes(record)

    def get(self, task_id: uuid.UUID) -> TaskRecord | None:
        """The task's record, or None if it is not remembered."""
        return self.records.get(task_id)

    def count_final(self, record: TaskRecord) -> None:
        """Count a task that just reached a final state (the counters outlive retention)."""
        if record.client is not None:
            self.open_by_client[record.client] -= 1
            self.bytes_by_client[record.client] += result_bytes(record)
        self.retained_total += result_bytes(record)
        self._finished.append(record.id)
        self._fresh += 1
        for dependency in record.task.dependencies:
            left = self.depended_on[dependency] - 1
            if left > 0:
                self.depended_on[dependency] = left
            else:
                self.depended_on.pop(dependency, None)
        if record.status == COMPLETED:
            self.completed_total += 1
        elif record.status in (FAILED, CANCELLED):
            self.failed_total += 1

    def count(self, *states: str) -> int:
        """How many remembered tasks are in one of *states*."""
        return sum(1 for record in self.records.values() if record.status in states)

    def newest(self, limit: int, offset: int = 0, state: str | None = None) -> list[TaskRecord]:
        """The *limit* most recently submitted tasks (in *state*, if given) after skipping
        the *offset* newest of those, newest first. The records are kept in submission
        order, so this walks back from the newest and stops when it has enough."""
        found: list[TaskRecord] = []
        for record in reversed(self.records.values()):
            if state is None or record.status == state:
                if offset:
                    offset -= 1
                    continue
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def recently_finished(self, limit: int) -> list[TaskRecord]:
        """The *limit* tasks that finished last, the latest first (those still remembered)."""
        found: list[TaskRecord] = []
        for task_id in reversed(self._finished):
            record = self.records.get(task_id)
            if record is not None and record.finished:
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def release(self, record: TaskRecord) -> int:
        """Stop holding a finished task's input and output (its client has them); returns
        the bytes let go (0: nothing to let go, or an unfinished task depends on it). The
        record stays, with its state and times; its result keeps ``success`` and says why
        its data is gone (:data:`RELEASED`)."""
        freed = retained_bytes(record)
        if not record.finished or freed == 0 or self.depended_on[record.id] > 0:
            return 0
        self._count_for(record, -1)
        record.task = dataclasses.replace(record.task, payload=emptied(record.task.payload))
        if record.result is not None and record.result.data:
            record.result = dataclasses.replace(record.result, data=None, error=RELEASED)
        self._count_for(record, 1)
        self.retained_total -= freed
        return freed

    def purge(self, now: float, retention: float, max_bytes: int | None = None) -> list[uuid.UUID]:
        """Forget finished tasks whose retention has ended, and, while more than *max_bytes*
        of inputs and results are remembered, the oldest finished ones; returns their ids.
        It reads the finished tasks oldest first and stops at the first to keep: its cost
        is what it forgets, not what is remembered."""
        self.compact()
        forgotten = []
        while self._finished:
            record = self.records.get(self._finished[0])
            if record is not None and record.finished_at is not None:
                expired = now - record.finished_at >= retention
                if not expired and (max_bytes is None or self.retained_total <= max_bytes):
                    break
                del self.records[record.id]
                self._count_for(record, -1)
                self.retained_total -= retained_bytes(record)
                forgotten.append(record.id)
            self._finished.popleft()
        self._fresh = min(self._fresh, len(self._finished))
        return forgotten

    def compact(self) -> int:
        """Compact the tasks finished since the last call (each :meth:`purge` calls it
        first): a plain success keeps its result's data, not a second copy of what its
        state says, and no list of the one worker it ran on. About 150 bytes less per
        remembered task (``docs/performance.rst``). Done after the task's outcome has been
        sent, not on the way of it; its cost is the tasks that finished meanwhile."""
        fresh, self._fresh = self._fresh, 0
        for task_id in itertools.islice(reversed(self._finished), fresh):
            record = self.records.get(task_id)
            if record is not None:
                record.compact()
        return fresh


def payload_bytes(payload: TaskPayload) -> int:
    """How many bytes of input a payload carries."""
    if isinstance(payload, TaskPayload.Data):
        return len(payload.data)
    if isinstance(payload, TaskPayload.Map):
        return sum(len(chunk) for chunk in payload.input_chunks)
    if isinstance(payload, TaskPayload.Reduce):
        return sum(len(item) for item in payload.intermediate_results)
    if isinstance(payload, TaskPayload.Call):
        return len(payload.arguments)
    return 0


#: The error text of a successful result whose data was released (:meth:`TaskStore.release`).
RELEASED = "released: its client has the result"


def emptied(payload: TaskPayload) -> TaskPayload:
    """*payload* with its bytes of input dropped, the rest (the function's name) kept."""
    if isinstance(payload, TaskPayload.Data):
        return dataclasses.replace(payload, data=b"")
    if isinstance(payload, TaskPayload.Map):
        return dataclasses.replace(payload, input_chunks=())
    if isinstance(payload, TaskPayload.Reduce):
        return dataclasses.replace(payload, intermediate_results=())
    if isinstance(payload, TaskPayload.Call):
        return dataclasses.replace(payload, arguments=b"")
    return payload


def result_bytes(record: TaskRecord) -> int:
    """How many bytes of output are remembered for a task."""
    kept = record.kept  # not record.result: a compacted one would be rebuilt
    if isinstance(kept, TaskResult):
        return len(kept.data or b"")
    return 0 if kept is None else len(kept)


def retained_bytes(record: TaskRecord) -> int:
    """How many bytes of input and output are remembered for a task."""
    return payload_bytes(record.task.payload) + result_bytes(record)
