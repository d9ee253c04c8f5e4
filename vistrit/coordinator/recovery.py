"""Journal records applied to a coordinator's core: how it comes back after a restart, and
how a follower keeps its copy of the leader's tasks.

A journal (:mod:`vistrit.coordinator.journal`) and a ``Replicate`` message
(:mod:`vistrit.coordinator.cluster`) carry the same three records: ``TaskSubmit`` (a task
was accepted), ``TaskOutcome`` (it reached its final state) and ``TaskOutcomeAck`` (its
client let its large payload go). Applying one is idempotent: a task already known, or an
outcome already applied, changes nothing, so a record read twice (a journal replayed
after a crash mid-compaction, a batch sent again to a follower) does no harm. Outcomes go
through the state table like every other change.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vistrit.coordinator import release
from vistrit.logic.tasks import PENDING, as_pending
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
