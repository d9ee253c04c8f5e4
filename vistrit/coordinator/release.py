"""Large payloads let go once their client has them: the answer to a ``TaskOutcomeAck`` (v4).

A finished task is remembered for the retention time (``--retention``, ``--retain-bytes``)
so that its client, or anyone asking later, can read its outcome. For a small task that
costs little; for an 8 MiB result it is 8 MiB held per call, for an hour. So a v4 client
that settles a future from a ``TaskOutcome`` whose input or result is large (at least
:data:`~vistrit.defaults.RELEASE_BYTES`) answers with a ``TaskOutcomeAck``: it has the
outcome, and nobody else waits for those bytes.

The coordinator then drops the task's input and its result's data
(:meth:`~vistrit.logic.tasks.TaskStore.release`) and keeps the rest: its state, times,
worker and attempts. A later query finds the task completed, and a result whose data is
gone and whose ``error`` says why (:data:`~vistrit.logic.tasks.RELEASED`); a client reads
that as an error, never as an empty result.

Only the task's own client may let it go, only once it is finished, and only if it is
large: an ack naming anything else changes nothing. The release is journaled and
replicated as the same ``TaskOutcomeAck`` record, naming just the tasks let go, so a
restarted coordinator and every follower let go of them too (on disk, a journal keeps
the bytes until it is compacted).

Read next: :mod:`vistrit.coordinator.core`.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from vistrit import defaults
from vistrit.coordinator.membership import Peer
from vistrit.logic.store import TaskStore, retained_bytes
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode

#: What a handler decides to send (as :data:`vistrit.coordinator.core.Outbox`).
Outbox = list[tuple[uuid.UUID, m.Message]]

#: The most task ids one ``TaskOutcomeAck`` may name.
MAX_IDS = 10_000


class Releases(Protocol):
    """What a release needs of the core: its tasks, and its journal."""

    store: TaskStore
    journal: list[m.Message | bytes]


def on_outcome_ack(core: Releases, peer: Peer, ack: m.TaskOutcomeAck, now: float) -> Outbox:
    """Let go of the large payloads of the finished tasks of *peer* that *ack* names."""
    if len(ack.task_ids) > MAX_IDS:
        why = f"a TaskOutcomeAck names at most {MAX_IDS} tasks, not {len(ack.task_ids)}"
        return [(peer.id, m.Error(code=ErrorCode.InvalidRequest, message=why))]
    let_go = []
    for task_id in ack.task_ids:
        record = core.store.get(task_id)
        if record is None or record.client != peer.id or not record.finished:
            continue
        if retained_bytes(record) >= defaults.RELEASE_BYTES and core.store.release(record):
            let_go.append(task_id)
    if let_go:
        core.journal.append(m.TaskOutcomeAck(task_ids=tuple(let_go)))
    return []


def replay(store: TaskStore, record: m.TaskOutcomeAck) -> None:
    """Apply a journaled release (a restart, or a follower's copy): the leader already
    checked whose tasks they were, so each one known and finished is let go."""
    for task_id in record.task_ids:
        known = store.get(task_id)
        if known is not None and known.finished:
            store.release(known)


__all__ = ["MAX_IDS", "Releases", "on_outcome_ack", "replay"]
