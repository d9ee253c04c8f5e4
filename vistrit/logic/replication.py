"""Replication: what each follower holds, which answers wait, and a follower's own copy.

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

**The leader's own disk.** With ``disk`` (a journal, ``--fsync always``), what waits waits
for the leader's ``fsync`` as well: the records go to the followers as soon as they are
written, and the leader's disk catches up on another thread (:meth:`Replicator.stored`,
:mod:`vistrit.coordinator.syncing`), so the two writes overlap. A coordinator without
followers uses a ``Replicator`` of none this way: its answers wait for its disk alone.

**One send in flight.** Records are sent as soon as they are numbered, unless a send is
still unacknowledged by a required follower: then they wait, and go together, in one
``Replicate``, when it is answered (:meth:`Replicator.outgoing`, :meth:`Replicator.flush`).
Under load, many batches share one message, one write to each follower's journal (and one
``fsync``) and one acknowledgement: the databases' *group commit*. Nothing waits longer
than it would have: the answers it holds wait for those followers anyway.

**A snapshot** is sent in parts (:func:`snapshot_parts`), each well inside a frame, and
the leader waits for its acknowledgement before it counts a follower's refusals again:
a follower refuses what was sent before the snapshot reached it, and that refusal is
stale (:meth:`Replicator.snapshot_stale`).

**Handing over.** Under takeover, the leader hands over to a follower ranked above it
only once that follower holds every record the leader numbered, and so every one it
acknowledged (:meth:`Replicator.holds_everything`).

**The follower's side** (:class:`FollowerCopy`): which leader's stream of records its copy
follows, in which term, and the last index it holds. A ``Replicate`` is applied only if
it continues that stream without a gap; a snapshot replaces the copy, part by part, in
order; anything else is refused, and the leader answers a refusal with a new snapshot.

This module never touches sockets, threads, clocks or logging. Read next:
:mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
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
    """The leader's bookkeeping for one term (with ``disk`` and no followers, a coordinator
    alone's, for its disk). ``T`` is whatever is held (an outbox)."""

    def __init__(self, timeout: float, disk: bool = False) -> None:
        self.timeout = timeout
        self.disk = disk  # answers wait for this coordinator's fsync too
        self.index = 0  # the last index numbered
        self.stored_through = 0  # with ``disk``: the last index on this coordinator's disk
        self.sent = 0  # the last index sent to the followers; the rest wait in ``unsent``
        self.unsent: list[bytes] = []
        self.followers: dict[int, FollowerProgress] = {}
        self._held: deque[tuple[int, T]] = deque()
        self._snapshots: dict[int, float] = {}  # followers sent a snapshot (when), not acked

    @property
    def held(self) -> int:
        """How many outboxes wait for replication."""
        return len(self._held)

    def join(self, rank: int, now: float) -> int:
        """A follower connected (or missed records): it is sent a snapshot as of the
        returned index, and is waited for once it holds it (and whatever was numbered
        after it). Send what :meth:`flush` returns to the others first: the snapshot
        holds every record numbered."""
        self.followers[rank] = FollowerProgress(rank, self.index, 0, now, False)
        self._snapshots[rank] = now
        return self.index

    def leave(self, rank: int) -> list[T]:
        """A follower's connection closed: no longer wait for it."""
        self.followers.pop(rank, None)
        self._snapshots.pop(rank, None)
        return self._release()

    def snapshot_stale(self, rank: int, now: float) -> bool:
        """The follower refused records: should it be sent a new snapshot? Not while the
        last one is on its way (for at most ``timeout``): the refusal may predate it."""
        sent_at = self._snapshots.get(rank)
        return sent_at is None or now - sent_at > self.timeout

    def holds_everything(self, rank: int) -> bool:
        """Does the follower hold every record numbered so far (its snapshot included)?"""
        follower = self.followers.get(rank)
        return (
            follower is not None
            and follower.required
            and follower.acked >= self.index
            and rank not in self._snapshots
        )

    def record(self, count: int, now: float) -> int:
        """Number *count* new records; returns the index of the first."""
        first = self.index + 1
        self.index += count
        for follower in self.followers.values():
            follower.sent = self.index
            if follower.waiting_since is None:
                follower.waiting_since = now
        return first

    def outgoing(self, frames: list[bytes], now: float) -> tuple[int, list[bytes]] | None:
        """Number *frames* as new records; returns those to send now, and the index of the
        first, or None: a send is still unacknowledged, and they go with the next one."""
        self.record(len(frames), now)
        self.unsent += frames
        return None if self.in_flight() else self.flush()

    def in_flight(self) -> bool:
        """Is a send unacknowledged by a follower that answers are waiting for?"""
        return any(f.required and f.acked < self.sent for f in self.followers.values())

    def flush(self) -> tuple[int, list[bytes]] | None:
        """Every record numbered and not yet sent, and the index of the first (None: none)."""
        if not self.unsent:
            return None
        first, frames, self.unsent = self.sent + 1, self.unsent, []
        self.sent = self.index
        return first, frames

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
        self._snapshots.pop(rank, None)  # whatever it acknowledged, its snapshot arrived
        follower.acked = max(follower.acked, index)
        if follower.acked >= follower.sent:
            follower.waiting_since = None
        if follower.acked >= self.index:
            follower.required = True  # caught up (again)
        return self._release()

    def stored(self, index: int) -> list[T]:
        """With ``disk``: the records up to *index* are on this coordinator's disk;
        returns what that releases."""
        self.stored_through = max(self.stored_through, index)
        return self._release()

    def hold(self, item: T, index: int | None) -> list[T]:
        """Hold *item* until the records up to *index* are safe (``None``: it
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

    @property
    def replicated(self) -> int:
        """The last index that every follower waited for holds (every one, if none is)."""
        return min((f.acked for f in self.followers.values() if f.required), default=self.index)

    @property
    def safe(self) -> int:
        """The last index that every follower waited for holds, and (with ``disk``) this
        coordinator's disk: what waits for it may go."""
        replicated = self.replicated
        return min(replicated, self.stored_through) if self.disk else replicated

    def _release(self) -> list[T]:
        safe = self.safe
        released = []
        while self._held and self._held[0][0] <= safe:
            released.append(self._held.popleft()[1])
        return released

    def discard(self) -> int:
        """Deposed: what is held will never be sent. Returns how many were dropped."""
        count = len(self._held)
        self._held.clear()
        self.unsent.clear()
        self._snapshots.clear()
        return count


def snapshot_parts(frames: list[bytes], part_bytes: int) -> list[list[bytes]]:
    """The records of a snapshot in parts of about *part_bytes* each (a record larger than
    that is a part of its own); always at least one part, maybe empty."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for frame in frames:
        if parts[-1] and size + len(frame) > part_bytes:
            parts.append([])
            size = 0
        parts[-1].append(frame)
        size += len(frame)
    return parts


@dataclass
class FollowerCopy:
    """A follower's side: the stream its copy follows, ``(term, leader)``, the last index
    of it applied, the snapshot part expected next (-1: a broken snapshot), and the records
    of a snapshot still arriving. A snapshot replaces the copy only once its last part is
    in: a partial or broken one never costs the follower what it holds."""

    stream: tuple[int, int] | None = None
    applied: int = 0
    next_part: int = 0
    pending: list[bytes] = field(default_factory=list)

    def continues(self, term: int, leader: int, index: int) -> bool:
        """Does a ``Replicate`` from *index* continue our stream without a gap?"""
        return self.stream == (term, leader) and index == self.applied + 1

    def applied_records(self, count: int) -> None:
        """*count* records of the stream were applied."""
        self.applied += count

    def snapshot_part(self, part: int, records: tuple[bytes, ...]) -> bool:
        """A snapshot part arrives: keep its records if it is the part expected (part 0
        always is, and starts a new snapshot). False: out of order, ignore the rest."""
        if part == 0:
            self.next_part, self.pending = 0, []
        if part != self.next_part:
            self.broken()
            return False
        self.pending.extend(records)
        self.next_part += 1
        return True

    def snapshot_complete(self, term: int, leader: int, index: int) -> list[bytes]:
        """The last part is in: the copy follows ``(term, leader)`` from *index* once the
        returned records replace it."""
        records, self.pending = self.pending, []
        self.stream, self.applied = (term, leader), index
        return records

    def broken(self) -> None:
        """A part was missing or bad: ignore the rest of this snapshot."""
        self.next_part, self.pending = -1, []
