"""Every task the coordinator remembers: the store of records, and what they hold in bytes.

A :class:`TaskStore` keeps each task's :class:`~vistrit.logic.tasks.TaskRecord` by id,
with the counters that outlive retention (completed and failed totals), each client's
open tasks and remembered bytes (what its quotas are measured against), and the order
in which tasks finished (what the purge reads, oldest first). A finished plain success
is packed into one ``bytes`` at the next tick (:mod:`vistrit.logic.packed`); whoever
reads it gets an equal record back.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.registry`.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import Counter, deque
from collections.abc import Iterator

from vistrit.logic.packed import pack, unpack
from vistrit.logic.tasks import CANCELLED, COMPLETED, FAILED, TaskRecord
from vistrit.protocol.types import Task, TaskPayload, TaskResult


class TaskStore:
    """Every task the coordinator remembers, by id, with counters that outlive retention."""

    def __init__(self) -> None:
        #: Every remembered task: its record, or the record packed (a finished plain
        #: success, :mod:`vistrit.logic.packed`). Read them with :meth:`get`, :meth:`view`
        #: or :meth:`each`, which unpack.
        self.records: dict[uuid.UUID, TaskRecord | bytes] = {}
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
        #: Finished tasks past their time to be forgotten that unfinished tasks still depend
        #: on: forgotten at the first purge after the last of those finishes.
        self._held: set[uuid.UUID] = set()
        #: How many of the newest finished tasks are not compacted yet.
        self._fresh = 0
        #: Packed tasks unpacked by :meth:`get` since the last compaction (packed again then).
        self._unpacked: list[uuid.UUID] = []

    def add(self, task: Task, now: float, client: uuid.UUID | None) -> TaskRecord:
        """Remember a new task (Pending), next in submission order."""
        self._sequence += 1
        record = TaskRecord(task=task, sequence=self._sequence, submitted_at=now, client=client)
        self.records[task.id] = record
        self._count_for(record, 1)
        self.retained_total += payload_bytes(task.payload)
        self.depended_on.update(task.dependencies)
        return record

    @property
    def last_sequence(self) -> int:
        """The submission number of the newest task added (0: none yet)."""
        return self._sequence

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
        """The task's record, or None if it is not remembered. A packed task is unpacked
        and kept so until the next compaction: what the caller changes is kept."""
        record = self.records.get(task_id)
        if type(record) is bytes:
            record = self.records[task_id] = unpack(task_id, record)
            self._unpacked.append(task_id)
        return record  # type: ignore[return-value]  # bytes were unpacked just above

    def known(self, task_id: uuid.UUID) -> TaskRecord:
        """The record of a task known to be remembered, as :meth:`get` (``KeyError`` if not)."""
        record = self.get(task_id)
        if record is None:
            raise KeyError(task_id)
        return record

    def view(self, task_id: uuid.UUID) -> TaskRecord | None:
        """The task's record to read, not to change (a packed task is unpacked into a
        copy), or None if it is not remembered."""
        record = self.records.get(task_id)
        return None if record is None else self.whole(task_id, record)

    @staticmethod
    def whole(task_id: uuid.UUID, record: TaskRecord | bytes) -> TaskRecord:
        """One of :attr:`records`, to read: a packed task unpacked into a copy."""
        return unpack(task_id, record) if isinstance(record, bytes) else record

    def each(self) -> Iterator[TaskRecord]:
        """Every remembered task's record, to read (see :meth:`view`), in submission order."""
        for task_id, record in self.records.items():
            yield self.whole(task_id, record)

    @staticmethod
    def status_of(record: TaskRecord | bytes) -> str:
        """A remembered task's state name, without unpacking it (only successes are packed)."""
        return COMPLETED if isinstance(record, bytes) else record.status

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
                continue
            self.depended_on.pop(dependency, None)
            if dependency in self._held:  # its turn to be forgotten came: it comes again
                self._held.discard(dependency)
                self._finished.appendleft(dependency)  # older than every other, so first
        if record.status == COMPLETED:
            self.completed_total += 1
        elif record.status in (FAILED, CANCELLED):
            self.failed_total += 1

    def count(self, *states: str) -> int:
        """How many remembered tasks are in one of *states*."""
        status_of = self.status_of
        return sum(1 for record in self.records.values() if status_of(record) in states)

    def newest(self, limit: int, offset: int = 0, state: str | None = None) -> list[TaskRecord]:
        """The *limit* most recently submitted tasks (in *state*, if given) after skipping
        the *offset* newest of those, newest first. The records are kept in submission
        order, so this walks back from the newest and stops when it has enough."""
        found: list[TaskRecord] = []
        for task_id, record in reversed(self.records.items()):
            if state is None or self.status_of(record) == state:
                if offset:
                    offset -= 1
                    continue
                found.append(self.whole(task_id, record))
                if len(found) >= limit:
                    break
        return found

    def recently_finished(self, limit: int) -> list[TaskRecord]:
        """The *limit* tasks that finished last, the latest first (those still remembered)."""
        found: list[TaskRecord] = []
        for task_id in reversed(self._finished):
            record = self.view(task_id)
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
        is what it forgets, not what is remembered. A task that unfinished tasks depend on
        is not forgotten before they finish (a Reduce is fed its dependencies' results)."""
        self.compact()
        forgotten = []
        while self._finished:
            record = self.view(self._finished[0])
            if record is not None and record.finished_at is not None:
                expired = now - record.finished_at >= retention
                if not expired and (max_bytes is None or self.retained_total <= max_bytes):
                    break
                if self.depended_on[record.id] > 0:
                    self._held.add(record.id)  # back in the queue when they finish
                    self._finished.popleft()
                    continue
                del self.records[record.id]
                self._count_for(record, -1)
                self.retained_total -= retained_bytes(record)
                forgotten.append(record.id)
            self._finished.popleft()
        self._fresh = min(self._fresh, len(self._finished))
        return forgotten

    def compact(self) -> int:
        """Compact the tasks finished since the last call (each :meth:`purge` calls it
        first), and those :meth:`get` unpacked since: a plain success keeps its result's
        data, not a second copy of what its state says, and no list of the one worker it
        ran on; then it is packed into one ``bytes`` (:mod:`vistrit.logic.packed`). About
        500 bytes less per remembered task (``docs/performance.rst``). Done after the
        task's outcome has been sent, not on the way of it; its cost is the tasks that
        finished meanwhile. Returns how many were looked at."""
        fresh, self._fresh = self._fresh, 0
        unpacked, self._unpacked = self._unpacked, []
        records = self.records
        for task_id in itertools.chain(itertools.islice(reversed(self._finished), fresh), unpacked):
            record = records.get(task_id)
            if type(record) is not TaskRecord or record.finished_at is None:
                continue  # packed already, forgotten, or (after an unpacking) not finished
            packed = pack(record)  # compacting first would be the same, and cost more
            if packed is not None:
                records[task_id] = packed
            else:
                record.compact()
        return fresh + len(unpacked)


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
