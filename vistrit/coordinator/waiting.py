"""The answers that wait for the records they depend on to be safe, and the assignments
that need not.

What an acknowledgement means (``docs/election.rst``, ``docs/durability.rst``): an answer
that depends on a record (the ``TaskSubmitAck`` of a submission, the ``TaskOutcome`` pushed
to a client) is held until every follower that is alive holds the record and, with
``--fsync always``, until this coordinator's own ``fsync`` of it has returned (made off the
lock: :mod:`vistrit.coordinator.syncing`). Whatever is decided later for the same node
queues behind it, so that every node receives its messages in the order they were decided.
The :class:`~vistrit.logic.replication.Replicator` keeps them, oldest first. A coordinator
without followers holds its answers the same way, for its disk alone.

An assignment depends on one record only: its task's submission (a new leader must know a
task that a worker runs). So :class:`Answers` lets a ``TaskAssign`` go at once when that
submission is safe already and nothing is held for its worker, instead of holding it
with the records of the batch that decided it. What it buys: a one-slot worker's next task
is decided when its last result arrives, and the outcome of that result is a record; held
with it, every task cost the worker a round trip to the followers on top of its own
(``docs/performance.rst``: W1 with three coordinators, about 1,700 → 2,200 tasks/s).

Read next: :mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque

from vistrit.coordinator.core import Outbox
from vistrit.logic.replication import Replicator
from vistrit.logic.store import TaskStore
from vistrit.protocol import messages as m


class Answers:
    """The outboxes a coordinator holds until their records are safe, with the order of
    each node's messages kept (see the module docstring). Under the coordinator's lock."""

    def __init__(self, replicator: Replicator[Outbox]) -> None:
        self.replicator = replicator
        #: How many held messages each node has: an assignment never overtakes them.
        self._held_to: Counter[uuid.UUID] = Counter()
        #: For each batch of records not yet safe, oldest first: the submission number of
        #: the newest task then, and the index of its last record.
        self._numbered: deque[tuple[int, int]] = deque()
        #: Every task submitted up to this number is safe (-1: none known to be since this
        #: leader's term began, but no batch waits either, see _submission_safe).
        self._through = -1

    def commit(self, outbox: Outbox, store: TaskStore, numbered: bool) -> list[Outbox]:
        """The outbox of a batch, whose records (if *numbered*) the replicator has just
        numbered: returns what may go now; the rest is held."""
        replicator = self.replicator
        if numbered:
            self._numbered.append((store.last_sequence, replicator.index))
        self._forget_safe()
        early: Outbox = []
        held: Outbox = []
        for sent in outbox:
            node, message = sent
            if (
                type(message) is m.TaskAssign
                and not self._held_to[node]
                and self._submission_safe(store, message.task.id)
            ):
                early.append(sent)
            else:
                held.append(sent)
                self._held_to[node] += 1  # later messages to it wait too, these included
        released = replicator.hold(held, replicator.index if numbered else None) if held else []
        return ([early] if early else []) + self.released(released)

    def released(self, outboxes: list[Outbox]) -> list[Outbox]:
        """Outboxes the replicator let go (now to be sent): no longer held."""
        held_to = self._held_to
        for outbox in outboxes:
            for node, _ in outbox:
                left = held_to[node] - 1
                if left > 0:
                    held_to[node] = left
                else:
                    del held_to[node]
        return outboxes

    def _submission_safe(self, store: TaskStore, task_id: uuid.UUID) -> bool:
        """Whether the task's submission is safe (in every waited-for follower's copy, and
        on this coordinator's disk if it waits for it): every batch of records is, or the
        one it came in is. (Before the first batch of a term is safe, no task is taken to
        be: its assignments wait, as every answer did.)"""
        record = store.view(task_id)
        if record is None:
            return False  # (not a task it knows: held, as any other message)
        return not self._numbered or record.sequence <= self._through

    def stored(self, index: int) -> list[Outbox]:
        """The records up to *index* are on this coordinator's disk (a group commit's
        ``fsync`` returned): what that releases, now to be sent."""
        return self.released(self.replicator.stored(index))

    def _forget_safe(self) -> None:
        safe = self.replicator.safe
        while self._numbered and self._numbered[0][1] <= safe:
            self._through = self._numbered.popleft()[0]


__all__ = ["Answers"]
