"""Many tasks in one frame: the coordinator's answer to a ``TaskSubmitBatch`` (v4).

``client.map`` sends its tasks a batch at a time instead of a ``TaskSubmit`` each: one
frame to decode and one acknowledgement to send per batch, not per task. Each task of the
batch is still taken exactly as its own ``TaskSubmit`` would be
(:meth:`~vistrit.coordinator.core.CoordinatorCore.on_submit`): checked against the
client's quotas, recorded, journaled as a ``TaskSubmit`` record of its own (so a journal,
a follower and a replay see nothing new), queued and scheduled. Their acknowledgements
are gathered into one ``TaskSubmitBatchAck``: how many were accepted, and each refusal
with its reason. It goes first, before anything else decided for those tasks.

A batch of more than :data:`MAX_BATCH` tasks, or with one id twice, is refused whole.

Read next: :mod:`vistrit.coordinator.core`.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from vistrit.coordinator.membership import Peer
from vistrit.protocol import messages as m
from vistrit.protocol.types import SubmitRefusal

#: What a handler decides to send (as :data:`vistrit.coordinator.core.Outbox`).
Outbox = list[tuple[uuid.UUID, m.Message]]


class Submits(Protocol):
    """What a batch needs of the core: its answer to one ``TaskSubmit``."""

    def on_submit(self, peer: Peer, submit: m.TaskSubmit, now: float) -> Outbox:
        """Record one task (or refuse it), and what follows from it."""
        ...


#: The most tasks one batch may carry (the client sends at most this many at a time).
MAX_BATCH = 10_000


def on_submit_batch(core: Submits, peer: Peer, batch: m.TaskSubmitBatch, now: float) -> Outbox:
    """Take each task of *batch* as its own ``TaskSubmit``; answer them all at once."""
    why = _refusal(batch)
    if why is not None:
        refused = tuple(SubmitRefusal(task_id=task.id, reason=why) for task in batch.tasks)
        return [
            (
                peer.id,
                m.TaskSubmitBatchAck(request_id=batch.request_id, accepted=0, refused=refused),
            )
        ]
    refusals: list[SubmitRefusal] = []
    rest: Outbox = []
    for task in batch.tasks:
        submit = m.TaskSubmit(task=task, request_id=batch.request_id)
        for node_id, message in core.on_submit(peer, submit, now):
            if isinstance(message, m.TaskSubmitAck) and node_id == peer.id:
                if not message.accepted:
                    reason = message.reason or "refused"
                    refusals.append(SubmitRefusal(task_id=task.id, reason=reason))
                continue
            rest.append((node_id, message))
    accepted = len(batch.tasks) - len(refusals)
    ack = m.TaskSubmitBatchAck(
        request_id=batch.request_id, accepted=accepted, refused=tuple(refusals)
    )
    return [(peer.id, ack), *rest]


def _refusal(batch: m.TaskSubmitBatch) -> str | None:
    """Why the whole batch is refused, or None."""
    if len(batch.tasks) > MAX_BATCH:
        return f"a batch carries at most {MAX_BATCH} tasks, not {len(batch.tasks)}"
    if len({task.id for task in batch.tasks}) != len(batch.tasks):
        return "a batch names one task id twice"
    return None
