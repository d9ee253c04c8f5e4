"""Which task runs next, and where: priorities, strategies, tags, capacity, dependencies.

* **Priority queues.** Four FIFO queues, Critical before High before Normal before Low.
  A task enters its queue when it is *ready*: every dependency has completed.
* **Dependencies.** A task waits until each task it depends on has completed. If one
  fails or is cancelled, the waiting task fails, with a reason naming that dependency
  (and so, in turn, do the tasks that wait on it).
* **Placement.** A task may go to a worker that accepts work, has a free slot, offers
  to run it (its function, module or program: :func:`~vistrit.logic.registry.need_of`),
  has every one of the task's tags, has not refused this task recently, and does not
  still hold an earlier attempt of it (a timed-out function that has not returned keeps
  its slot, and a task never has two attempts on one worker). A retry prefers a worker
  that has not tried the task yet. Among those, the strategy picks: ``least-loaded``
  (the default: the smallest share of its slots in use, then the earliest joined; found
  in O(log workers) by :mod:`vistrit.logic.placement`), ``round-robin`` (each in turn, by
  joining order) or ``random``.
* **No head-of-line blocking.** A task that fits no worker now (its tags are nowhere) is
  skipped, keeping its place; the tasks behind it are still placed.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.coordinator`.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from vistrit.logic.placement import FreeWorkers
from vistrit.logic.registry import Need, Registry, WorkerEntry, need_of
from vistrit.logic.store import RELEASED
from vistrit.logic.tasks import COMPLETED, TaskRecord
from vistrit.protocol.types import TaskPayload, TaskPriority

STRATEGIES = ("least-loaded", "round-robin", "random")

#: The priorities, highest first: the order the ready queues are served in. (Iterating
#: an Enum class runs a generator over its members: once here, not on every placement.)
HIGH_FIRST = tuple(sorted(TaskPriority, reverse=True))


class Chooser(Protocol):
    """Randomness, passed in (``random.Random`` fits), so tests can fix the seed."""

    def choice(self, seq: Sequence[Any]) -> Any:
        """One item of *seq*, at random."""
        ...

    def random(self) -> float:
        """A float in [0, 1), at random."""
        ...


class Scheduler:
    """Ready queues, waiting tasks, and the placement of ready tasks on workers."""

    def __init__(
        self, strategy: str = "least-loaded", rng: Chooser | None = None, indexed: bool = True
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if strategy == "random" and rng is None:
            raise ValueError("the random strategy needs an rng")
        self.strategy = strategy
        #: least-loaded from the heap of free workers (False: by a scan, as the other
        #: strategies do; the tests check that both place every task alike).
        self.indexed = indexed and strategy == "least-loaded"
        self._rng = rng
        self._last_joined = 0  # round-robin: the joining number of the last worker used
        self.queues: dict[TaskPriority, deque[uuid.UUID]] = {p: deque() for p in TaskPriority}
        self.waiting: dict[uuid.UUID, set[uuid.UUID]] = {}  # task -> dependencies not done
        self.dependents: dict[uuid.UUID, set[uuid.UUID]] = {}  # dependency -> waiting tasks
        #: How many tasks entered the ready queues other than as new submissions (released
        #: by their dependencies, or put back): they are told why they wait at the next
        #: look (:class:`~vistrit.coordinator.offers.Notes`).
        self.entered = 0

    # -- entering and leaving the queues ---------------------------------------------------

    def add(
        self, record: TaskRecord, lookup: Callable[[uuid.UUID], TaskRecord | None]
    ) -> str | None:
        """Queue a new task, or make it wait. Returns a failure reason if it can never run."""
        pending = set()
        for dependency in record.task.dependencies:
            other = lookup(dependency)
            if other is None:
                return f"dependency {dependency} is unknown"
            if other.finished and other.status != COMPLETED:
                return f"dependency {dependency} {other.status.lower()}"
            if not other.finished:
                pending.add(dependency)
        if pending:
            self.waiting[record.id] = pending
            for dependency in pending:
                self.dependents.setdefault(dependency, set()).add(record.id)
        else:
            self.queues[record.task.priority].append(record.id)
        return None

    def requeue(self, record: TaskRecord) -> None:
        """Put a task back at the front of its queue (it was refused, lost or retried)."""
        self.queues[record.task.priority].appendleft(record.id)
        self.entered += 1

    def remove(self, record: TaskRecord) -> None:
        """Take a pending task out (it was cancelled or failed)."""
        queue = self.queues[record.task.priority]
        if record.id in queue:
            queue.remove(record.id)
        for dependency in self.waiting.pop(record.id, set()):
            self.dependents.get(dependency, set()).discard(record.id)

    def finished(
        self, record: TaskRecord, lookup: Callable[[uuid.UUID], TaskRecord | None]
    ) -> list[tuple[uuid.UUID, str]]:
        """A task reached a final state: release or fail the tasks waiting on it.

        Returns the waiting tasks that must now fail, with the reason for each; the
        caller fails them and calls ``finished`` for them in turn.
        """
        failures = []
        for waiter_id in sorted(self.dependents.pop(record.id, set()), key=str):
            waiter = lookup(waiter_id)
            remaining = self.waiting.get(waiter_id)
            if waiter is None or remaining is None:
                continue
            if record.status != COMPLETED:
                self.remove(waiter)
                failures.append((waiter_id, f"dependency {record.id} {record.status.lower()}"))
                continue
            remaining.discard(record.id)
            if not remaining:
                del self.waiting[waiter_id]
                self.queues[waiter.task.priority].append(waiter_id)
                self.entered += 1
        return failures

    @property
    def ready_count(self) -> int:
        """How many tasks are ready to run, in every queue."""
        return sum(len(queue) for queue in self.queues.values())

    # -- placement -------------------------------------------------------------------------

    def assign(
        self,
        registry: Registry,
        lookup: Callable[[uuid.UUID], TaskRecord | None],
        now: float,
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Place as many ready tasks as the free slots allow: ``[(task_id, worker_id)]``.
        ``least-loaded`` asks the registry's heap of free workers
        (:mod:`vistrit.logic.placement`: O(log W) a task); the other strategies look at
        every worker."""
        if self.indexed:
            placer: _Placer = _Indexed(registry.free)
        else:
            placer = _Scan(self, registry.eligible())
        placed: list[tuple[uuid.UUID, uuid.UUID]] = []
        for priority in HIGH_FIRST:
            queue = self.queues[priority]
            skipped: list[uuid.UUID] = []
            unplaceable: set[Shape] = set()
            while queue and placer.any_free():
                task_id = queue.popleft()
                record = lookup(task_id)
                if record is None:
                    continue
                need = need_of(record.task.payload)
                shape = (frozenset(record.task.tags), record.excluded_at(now), need)
                if shape in unplaceable:
                    skipped.append(task_id)
                    continue
                worker = placer.pick(partial(_fits, shape, task_id), record.tried)
                if worker is None:
                    if not record.tried:  # a retry's fit also depends on who holds it
                        unplaceable.add(shape)  # every task of this shape fails the same way
                    skipped.append(task_id)
                    continue
                placed.append((task_id, worker.id))
                placer.took(worker)
            queue.extendleft(reversed(skipped))  # skipped tasks keep their places
            if not placer.any_free():
                break
        return placed

    def _pick(self, fits: list[WorkerEntry], free: dict[uuid.UUID, int]) -> WorkerEntry:
        if self.strategy == "random":
            assert self._rng is not None
            chosen: WorkerEntry = self._rng.choice(fits)
            return chosen
        if self.strategy == "round-robin":
            after = [w for w in fits if w.joined > self._last_joined]
            chosen = (after or fits)[0]
            self._last_joined = chosen.joined
            return chosen

        def load(w: WorkerEntry) -> tuple[float, int, int]:
            used = w.capacity - free[w.id]
            return (used / w.slots, used, w.joined)

        return min(fits, key=load)


Shape = tuple[frozenset[str], frozenset[uuid.UUID], Need]


def _fits(shape: Shape, task_id: uuid.UUID, worker: WorkerEntry) -> bool:
    """Whether *worker* may run a task of *shape* (its tags, the workers it excludes now,
    what it needs) that it does not hold already."""
    tags, excluded, need = shape
    return (
        (not tags or tags <= worker.tags)  # most tasks ask for no tag: no set made
        and worker.id not in excluded
        and worker.offers(need)
        and task_id not in worker.running
    )


class _Placer(Protocol):
    """How ``assign`` finds a worker: by a scan, or from the heap of free workers."""

    def any_free(self) -> bool: ...
    def pick(
        self, fits: Callable[[WorkerEntry], bool], tried: tuple[uuid.UUID, ...]
    ) -> WorkerEntry | None: ...
    def took(self, worker: WorkerEntry) -> None: ...


class _Scan:
    """Every worker looked at, for every task: the rule as plainly as it can be said."""

    def __init__(self, scheduler: Scheduler, workers: list[WorkerEntry]) -> None:
        self.scheduler = scheduler
        self.free = {w.id: w.free for w in workers if w.accepting and w.free > 0}
        self.candidates = sorted((w for w in workers if w.id in self.free), key=lambda w: w.joined)

    def any_free(self) -> bool:
        return bool(self.free)

    def pick(
        self, fits: Callable[[WorkerEntry], bool], tried: tuple[uuid.UUID, ...]
    ) -> WorkerEntry | None:
        fitting = [w for w in self.candidates if w.id in self.free and fits(w)]
        if not fitting:
            return None
        untried = [w for w in fitting if w.id not in tried]
        return self.scheduler._pick(untried or fitting, self.free)

    def took(self, worker: WorkerEntry) -> None:
        self.free[worker.id] -= 1
        if not self.free[worker.id]:
            del self.free[worker.id]


class _Indexed:
    """The least loaded worker that fits, from the heap (a retry: one that has not tried
    it, if there is one). What this call placed is counted until the registry holds it."""

    def __init__(self, free: FreeWorkers[WorkerEntry]) -> None:
        self.index = free
        self.placed: dict[uuid.UUID, int] = {}  # (a Counter costs more to make, every call)
        self._any = free.best(_anyone) is not None

    def any_free(self) -> bool:
        return self._any

    def pick(
        self, fits: Callable[[WorkerEntry], bool], tried: tuple[uuid.UUID, ...]
    ) -> WorkerEntry | None:
        if tried:
            untried = self.index.best(lambda w: w.id not in tried and fits(w))
            if untried is not None:
                return untried
        return self.index.best(fits)

    def took(self, worker: WorkerEntry) -> None:
        placed = self.placed[worker.id] = self.placed.get(worker.id, 0) + 1
        self.index.update(worker, placed)
        self._any = self.index.best(_anyone) is not None


def _anyone(worker: WorkerEntry) -> bool:
    return True


def inputs_of(
    record: TaskRecord, lookup: Callable[[uuid.UUID], TaskRecord | None]
) -> TaskPayload | str:
    """What a task is given to run: its payload, except that a Reduce with dependencies
    and no inputs of its own is fed their results, in order (map/reduce). A string instead
    says why it cannot be: a dependency's result is gone, and a Reduce of the rest would be
    a wrong answer that looks right."""
    payload = record.task.payload
    if not isinstance(payload, TaskPayload.Reduce) or payload.intermediate_results:
        return payload
    results = []
    for dependency in record.task.dependencies:
        other = lookup(dependency)
        if other is None:
            return f"dependency {dependency} is no longer remembered (past its retention)"
        result = other.result
        if result is not None and result.error == RELEASED:
            return f"dependency {dependency}'s result was let go: its client had collected it"
        if result is not None and result.data is not None:
            results.append(result.data)
    return TaskPayload.Reduce(function=payload.function, intermediate_results=tuple(results))
