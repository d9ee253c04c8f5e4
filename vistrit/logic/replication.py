"""The leader's side of replication: what each follower holds, and which answers wait.

The leader numbers the journal records of its term: a snapshot as of index ``S`` first
(everything it remembers), then each record ``S+1``, ``S+2``, ... as it journals it,
sent to every follower in ``Replicate`` messages. A follower writes them to its own
journal and answers ``ReplicateAck`` with the last index it holds.

**What waits.** The messages a batch of records gives rise to (a ``TaskSubmitAck``, a
``TaskOutcome``, the assignments decided with them) are *held* until every *required*
follower holds the batch's last record; later messages queue behind them, so every peer
still receives them in the order they were decided. So a client is told "accepted" only
once the task is on the leader's disk and on the disks of the followers that are alive.

**Who is required.** A follower that joins is sent a snapshot first; it is required
once it holds the snapshot and everything numbered after it, so that a large snapshot
does not hold every answer up. One that leaves, or leaves a send unacknowledged for
longer than ``timeout``, stops being required, so one dead follower cannot stop the
cluster; once it holds everything again, it is required again. A leader that was paused
(its tick came late) does not count the pause against its followers: it gives them a
fresh ``timeout`` instead, so that it cannot mistake its own sleep for their deaths.

This module never touches sockets, threads, clocks or logging. Read next:
:mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class FollowerProgress:
    """What the leader knows of one follower."""

    rank: int
    sent: int = 0  # the last index sent to it
    acked: int = 0  # the last index it holds
    waiting_since: float | None = None  # when its oldest unacknowledged send left
    required: bool = True  # held messages wait for it


class Replicator(Generic[T]):
    """The leader's bookkeeping for one term. ``T`` is whatever is held (an outbox)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.index = 0  # the last index numbered
        self.followers: dict[int, FollowerProgress] = {}
        self._held: deque[tuple[int, T]] = deque()

    @property
    def held(self) -> int:
        return len(self._held)

    def join(self, rank: int, now: float) -> int:
        """A follower connected: it is sent a snapshot as of the returned index, and is
        waited for once it holds it (and whatever was numbered after it)."""
        self.followers[rank] = FollowerProgress(rank, self.index, 0, now, False)
        return self.index

    def leave(self, rank: int) -> list[T]:
        """A follower's connection closed: no longer wait for it."""
        self.followers.pop(rank, None)
        return self._release()

    def record(self, count: int, now: float) -> int:
        """Number *count* new records; returns the index of the first."""
        first = self.index + 1
        self.index += count
        for follower in self.followers.values():
            follower.sent = self.index
            if follower.waiting_since is None:
                follower.waiting_since = now
        return first

    def probe(self, now: float) -> None:
        """A heartbeat goes out: every follower is expected to answer it."""
        for follower in self.followers.values():
            if follower.waiting_since is None:
                follower.waiting_since = now

    def acked(self, rank: int, index: int) -> list[T]:
        """A follower holds everything up to *index*; returns what that releases."""
        follower = self.followers.get(rank)
        if follower is None:
            return []
        follower.acked = max(follower.acked, index)
        if follower.acked >= follower.sent:
            follower.waiting_since = None
        if follower.acked >= self.index:
            follower.required = True  # caught up (again)
        return self._release()

    def hold(self, item: T, index: int | None) -> list[T]:
        """Hold *item* until the records up to *index* are replicated (``None``: it
        depends on no record, but must not overtake what is held). Returns what can go."""
        if index is None:
            if not self._held:
                return [item]
            index = self._held[-1][0]
        self._held.append((index, item))
        return self._release()

    def tick(self, now: float, paused: bool) -> tuple[list[T], list[int]]:
        """Stop waiting for followers silent past the timeout. Returns what that releases,
        and the ranks that stopped being required."""
        dropped = []
        for follower in self.followers.values():
            if follower.waiting_since is None:
                continue
            if paused:
                follower.waiting_since = now  # our own pause is not their silence
            elif follower.required and now - follower.waiting_since > self.timeout:
                follower.required = False
                dropped.append(follower.rank)
        return self._release(), dropped

    def _release(self) -> list[T]:
        required = [f.acked for f in self.followers.values() if f.required]
        replicated = min(required, default=self.index)
        released = []
        while self._held and self._held[0][0] <= replicated:
            released.append(self._held.popleft()[1])
        return released

    def discard(self) -> int:
        """Deposed: what is held will never be sent. Returns how many were dropped."""
        count = len(self._held)
        self._held.clear()
        return count
