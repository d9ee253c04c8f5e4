"""Journal records applied to a coordinator's core: how it comes back after a restart, and
how a follower keeps its copy of the leader's tasks.

A journal (:mod:`vistrit.coordinator.journal`) and a ``Replicate`` message
(:mod:`vistrit.coordinator.cluster`) carry the same three records: ``TaskSubmit`` (a task
was accepted), ``TaskOutcome`` (it reached its final state) and ``TaskOutcomeAck`` (its
client let its large payload go). Applying one is idempotent: a task already known, or an
outcome already applied, changes nothing, so a record read twice (a journal replayed
after a crash mid-compaction, a batch sent again to a follower) does no harm. Outcomes go
through the state table like every other change.

A follower's copy is replaced whole when it follows a new leader (a snapshot). What the
old copy had finished and the new one has not is kept aside (:class:`Orphans`), and
finished again if this coordinator comes to lead.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from vistrit.coordinator import answers, release
from vistrit.logic.store import TaskStore
from vistrit.logic.tasks import PENDING, TaskRecord, as_pending
from vistrit.protocol import messages as m

if TYPE_CHECKING:
    from vistrit.coordinator.core import CoordinatorCore


def restore(core: CoordinatorCore, entries: list[m.Message], now: float) -> None:
    """Rebuild *core*'s task store from a journal's records, in order (see :func:`replay`)."""
    for entry in entries:
        replay(core, entry, now)


def replay(core: CoordinatorCore, entry: m.Message, now: float) -> None:
    """Apply one journal record to *core*: from its own journal on a restart, or from the
    leader's (a follower). Idempotent (see the module docstring)."""
    store = core.store
    if isinstance(entry, m.TaskSubmit):
        if entry.task.id in store.records:
            return
        task = as_pending(entry.task)
        record = store.add(task, now, task.submitted_by)  # its client may come back
        failure = core.scheduler.add(record, store.get)
        if failure is not None:
            core.fail(record, failure, None, now)
    elif isinstance(entry, m.TaskOutcome):
        known = store.get(entry.task_id)
        if known is None or known.finished:
            return
        if known.status == PENDING:
            core.scheduler.remove(known)
        known.settle(entry.state, entry.result, now)
        store.count_final(known)
        core.settle_dependents(known, now)
    elif isinstance(entry, m.TaskOutcomeAck):
        release.replay(store, entry)


class Orphans:
    """The tasks a replaced copy had finished and the copy that replaced it has not (it
    lacks them, or holds them unfinished): kept, and finished again in this coordinator's
    copy when it next leads.

    Why. A leader on the side of a partition that goes on working acknowledges tasks with
    the followers on its side, and its clients are given their results. A coordinator cut
    off alone elects itself meanwhile, in a newer term. When the partition heals, that term
    deposes the leader, which follows the lone one and takes its copy, which lacks what the
    other side finished. The same happens the other way round to what a leader cut off
    alone finished (``docs/limits.rst``). Kept here, those tasks are journaled again, and so
    are in every follower's snapshot, when this coordinator leads: with takeover at once,
    if it outranks the one it followed.

    Only finished tasks are kept: the client of an unfinished one still waits for it and
    submits it again when it reconnects, and a copy may be old enough for such a task to
    have finished (and been forgotten) elsewhere since. Only a copy that has been current
    is worth keeping (:attr:`~vistrit.logic.election.Election.was_current`): one restored
    from an old journal remembers what the cluster may rightly have forgotten since. A
    task remembered again is remembered from then on (its retention starts again), unless
    its retention had ended in the copy that kept it. They are kept in memory only: if
    this coordinator stops before it leads, they are in the journal it set aside.
    """

    def __init__(self, retention: float) -> None:
        self.retention = retention  # a task is not kept past its retention
        #: Each kept task: when it finished, and its records (submission, then outcome).
        self.tasks: dict[uuid.UUID, tuple[float, list[m.Message]]] = {}

    def keep(self, old: TaskStore, new: TaskStore, now: float) -> int:
        """Keep the tasks *old* has finished and *new* has not (and forget those kept
        earlier that *new* has finished, or whose retention has ended); returns how many
        are kept now."""
        for task_id, (when, _) in list(self.tasks.items()):
            if now - when >= self.retention or _finished(new.records.get(task_id)):
                del self.tasks[task_id]
        kept = 0
        for task_id, held in old.records.items():
            if _finished(new.records.get(task_id)):
                continue
            record = old.whole(task_id, held)
            done = record.finished_at
            if record.finished and done is not None and now - done < self.retention:
                submit = m.TaskSubmit(task=record.task, request_id=uuid.UUID(int=0))
                self.tasks[task_id] = (done, [submit, answers.outcome(record)])
                kept += 1
        return kept

    def adopt(self, core: CoordinatorCore, now: float) -> list[m.Message]:
        """Finish again, in *core*, the kept tasks it has not finished (adding those it
        lacks) whose retention has not ended; returns their records, to journal. Empties
        the keep."""
        entries: list[m.Message] = []
        for task_id, (finished_at, records) in self.tasks.items():
            held = core.store.records.get(task_id)
            if _finished(held) or now - finished_at >= self.retention:
                continue
            for record in records:  # the submission changes nothing if the task is known
                replay(core, record, now)
            entries += records
        self.tasks.clear()
        return entries


def _finished(held: TaskRecord | bytes | None) -> bool:
    """Is a remembered task finished? (A packed one is: only successes are packed.)"""
    return isinstance(held, bytes) or (held is not None and held.finished)
