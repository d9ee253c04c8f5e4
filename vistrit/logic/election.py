"""Which coordinator leads: the bully algorithm (Garcia-Molina, 1982), with terms.

Every coordinator has a rank, its ``--id``: a positive number, unique in the cluster.
The highest-ranked coordinator that is alive leads. The literature's three messages are
the protocol's v1 election messages:

=================  ====================  =============================================
literature         Vistrit (v1)          meaning
=================  ====================  =============================================
*Election*         ``ElectionStart``     "I stand; is anyone above me alive?"
*Answer*           ``ElectionVote``      "I am above you and alive: stand down"
*Coordinator*      ``LeaderAnnounce``    "I won: I lead from this term on"
=================  ====================  =============================================

How an election runs (the table :data:`TRANSITIONS` is the whole state machine):

1. A **Follower** that hears nothing from its leader for ``leader_timeout`` (with jitter,
   so that followers do not all start together), or that knows no leader, becomes a
   **Candidate**: it starts a new term and sends ``ElectionStart`` to every coordinator
   ranked above it.
2. A coordinator that receives ``ElectionStart`` from one ranked below answers with
   ``ElectionVote`` ("I am alive") and, if it is a follower, stands itself (step 1).
3. A candidate that gets an answer waits (**Waiting**) for the winner's announcement,
   at most ``announce_timeout``; if none comes, the one above died too: it stands again.
4. A candidate that gets no answer within ``answer_timeout`` has won: it is the
   **Leader**, and sends ``LeaderAnnounce`` to every coordinator.

Terms fence off the past. Each election has a term, one higher than any the candidate
has seen; every message carries its sender's term, and a receiver adopts a newer term
at once. A message from an older term is refused: a leader that was paused (``SIGSTOP``)
and comes back still believes in its old term, and every reply it gets tells it it has
been deposed. Two leaders of the same term (possible only if messages were lost between
them) are settled by rank: the higher one stays.

A coordinator that starts (or comes back) while a lower-ranked one leads first follows
it and receives its copy of the tasks. Then the bully's rule applies (``takeover=True``,
Vistrit's default): the leader, which alone knows when that copy holds every record it
has acknowledged, challenges the higher one (``ElectionStart``), which answers, stands
and wins. With ``takeover=False`` the leader keeps leading until it fails. Every
coordinator of a cluster should be given the same setting: the leader's decides.

One rule is added to the bully's, because a coordinator here carries state: only a
coordinator whose copy of the tasks is **current** answers challenges. Its copy is
current once it has led, or has received the whole copy of the leader it follows; it
stops being current when it starts following a new leader, and when it finds it was
paused past the leader timeout (it cannot know what it missed); and one that restarts
from a saved term (it was killed, or stopped) is not current until then. A coordinator that is
not current keeps quiet, so the others elect one that is; it stands only if nobody has
led for ``STALE_WAIT`` leader timeouts (someone must lead, even from an old copy).

This module never touches sockets, threads, clocks or logging: time is passed in as
``now``. Read next: :mod:`vistrit.logic.replication`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from vistrit.defaults import MAX_TERM_JUMP
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import SocketAddr

FOLLOWER = "Follower"
CANDIDATE = "Candidate"
WAITING = "Waiting"
LEADER = "Leader"
ROLES = (FOLLOWER, CANDIDATE, WAITING, LEADER)

#: (role, event) -> the role after it. Anything not listed cannot happen.
TRANSITIONS: dict[tuple[str, str], str] = {
    (FOLLOWER, "leader silent"): CANDIDATE,
    (FOLLOWER, "challenged"): CANDIDATE,  # answer the lower one, and stand too
    (CANDIDATE, "challenged"): CANDIDATE,  # answer; already standing
    (CANDIDATE, "answered"): WAITING,
    (CANDIDATE, "unanswered"): LEADER,
    (WAITING, "challenged"): WAITING,  # answer; someone above is taking over
    (WAITING, "no announcement"): CANDIDATE,
    (LEADER, "challenged"): LEADER,  # answer, and announce again
    (LEADER, "outranked"): CANDIDATE,  # a higher one holds every record: hand over
    (LEADER, "newer term"): FOLLOWER,  # an election ran without us: we may be deposed
    (FOLLOWER, "announced"): FOLLOWER,
    (CANDIDATE, "announced"): FOLLOWER,
    (WAITING, "announced"): FOLLOWER,
    (LEADER, "announced"): FOLLOWER,  # deposed: a newer term, or a higher rank in ours
    (LEADER, "paused"): FOLLOWER,  # it slept past the leader timeout: deposed, maybe
}

#: A coordinator whose copy of the tasks may be stale waits this many leader timeouts
#: (instead of one) before it stands, so that one with a current copy wins first.
STALE_WAIT = 4

#: The highest term ever adopted: far below the u64 limit, so that no term, however it got
#: here, can make the next one overflow the wire.
TERM_LIMIT = 2**62

#: Which field of each message names its sender (a ``LeaderAnnounce`` may relay another's).
SENDER_FIELDS = {
    m.ElectionStart: "candidate_id",
    m.ElectionVote: "voter_id",
    m.Replicate: "leader_id",
    m.ReplicaSnapshot: "leader_id",
    m.ReplicateAck: "follower_id",
}

#: What the election asks its node to send: ``(rank, message)``.
Sends = list[tuple[int, m.Message]]


class IllegalElectionEvent(Exception):
    """An event the table has no transition for, in the current role."""


def coordinator_id(rank: int) -> uuid.UUID:
    """A coordinator's node id is its rank as a UUID (rank 3 is ``...0003``): the
    election messages carry node ids, and every coordinator can read a rank from them."""
    return uuid.UUID(int=rank)


def rank_of(node_id: uuid.UUID) -> int:
    """The rank a coordinator's node id carries (see :func:`coordinator_id`)."""
    return node_id.int


@dataclass(frozen=True)
class Timing:
    """The election's timeouts, in seconds (see :mod:`vistrit.defaults`)."""

    leader_timeout: float
    answer_timeout: float
    announce_timeout: float
    jitter: float


class Election:
    """One coordinator's view of the election. Call its methods under the node's lock."""

    def __init__(
        self,
        rank: int,
        address: SocketAddr,
        peers: dict[int, SocketAddr],
        timing: Timing,
        *,
        now: float,
        random: Callable[[], float],
        term: int = 0,
        takeover: bool = True,
    ) -> None:
        if rank < 1 or rank in peers:
            raise ValueError("a coordinator's id must be positive and unlike its peers'")
        self.rank = rank
        self.address = address
        self.peers = dict(peers)
        self.timing = timing
        self.takeover = takeover
        self._random = random
        self.role = FOLLOWER
        self.term = term
        self.leader: int | None = None  # the rank of the leader, if known
        self.leader_term = 0  # the term it leads in
        self.leader_address: SocketAddr | None = None
        # Our copy of the tasks is complete (see the module docstring): at a cluster's
        # first start, yes; a coordinator that restarts from a saved term holds what it had
        # when it stopped, which the others may have moved past.
        self.current = term == 0
        # Our copy has been current at some time since we started: what it held was true
        # then (a copy restored from an old journal was not, until it is replaced).
        self.was_current = self.current
        self.deadline = self._listen(now)  # listen for a leader first
        self.history: list[tuple[str, str, int]] = []  # (event, new role, term): for the log

    @property
    def id(self) -> uuid.UUID:
        """This coordinator's node id."""
        return coordinator_id(self.rank)

    @property
    def is_leader(self) -> bool:
        """Whether this coordinator leads now."""
        return self.role == LEADER

    def _listen(self, now: float) -> float:
        """The deadline for hearing from a leader before standing."""
        wait = self.timing.leader_timeout * (1 if self.current else STALE_WAIT)
        return now + wait + self.timing.jitter * self._random()

    def _event(self, event: str) -> None:
        role = TRANSITIONS.get((self.role, event))
        if role is None:
            raise IllegalElectionEvent(f"{event!r} cannot happen to a {self.role}")
        self.role = role
        self.history.append((event, role, self.term))

    def _observe(self, term: int) -> None:
        self.term = max(self.term, term)

    # -- the passing of time ----------------------------------------------------------------

    def implausible(self, sender: int, message: m.Message) -> str | None:
        """Why *message*, from coordinator *sender*, is not to be believed: it speaks for
        another coordinator, or its term is past :data:`TERM_LIMIT` or further ahead of
        ours than ``MAX_TERM_JUMP``. None: it may be handled."""
        field = SENDER_FIELDS.get(type(message))
        if field is not None and getattr(message, field) != coordinator_id(sender):
            return f"its {field} is not coordinator {sender}'s"
        term = getattr(message, "term", None)
        if term is not None and (term > TERM_LIMIT or term - self.term > MAX_TERM_JUMP):
            return f"term {term} is implausible (ours is {self.term})"
        return None

    def tick(self, now: float) -> Sends:
        """Act on the deadline that passed, if one did."""
        if self.role == LEADER or now < self.deadline:
            return []
        if self.role == FOLLOWER:
            return self._stand("leader silent", now)
        if self.role == WAITING:
            return self._stand("no announcement", now)
        return self._win(now)  # a candidate nobody above answered

    def leader_lost(self, now: float) -> None:
        """The connection from the leader closed: stand soon, without waiting the timeout
        (only the jitter, so that followers do not all stand at once)."""
        if self.role == FOLLOWER and self.leader is not None:
            self.leader = self.leader_address = None
            self.deadline = min(self.deadline, now + self.timing.jitter * self._random())

    def _stand(self, event: str, now: float) -> Sends:
        """Become (or stay) a candidate: a new term, and a challenge to everyone above."""
        self.term += 1
        self._event(event)
        self.leader = self.leader_address = None
        self.deadline = now + self.timing.answer_timeout
        above = [rank for rank in sorted(self.peers) if rank > self.rank]
        if not above:
            return self._win(now)
        start = m.ElectionStart(term=self.term, candidate_id=self.id, priority=self.rank)
        return [(rank, start) for rank in above]

    def _win(self, now: float) -> Sends:
        self._event("unanswered")
        self.current = self.was_current = True  # what it holds is, from now on, the truth
        self.leader, self.leader_address = self.rank, self.address
        self.leader_term = self.term
        return [(rank, self.announcement()) for rank in sorted(self.peers)]

    def announcement(self) -> m.LeaderAnnounce:
        """The ``LeaderAnnounce`` of the leader we know: who leads, in which term, where."""
        assert self.leader is not None and self.leader_address is not None
        return m.LeaderAnnounce(
            term=self.term,
            leader_id=coordinator_id(self.leader),
            leader_address=self.leader_address,
        )

    # -- messages from other coordinators ---------------------------------------------------

    def on_start(self, start: m.ElectionStart, now: float) -> Sends:
        """A candidate challenges us: answer if we rank above it, then stand or announce."""
        candidate = rank_of(start.candidate_id)
        newer = start.term > self.term
        self._observe(start.term)
        if candidate not in self.peers or candidate > self.rank:
            return []  # a stranger, or one above us: the bully only challenges upwards
        if not self.current:
            return []  # our copy may be stale: let the others elect one that is current
        answer = m.ElectionVote(term=self.term, voter_id=self.id, vote_for=self.id)
        sends: Sends = [(candidate, answer)]
        if self.role == LEADER and not newer:
            self._event("challenged")
            return [*sends, (candidate, self.announcement())]
        if self.role == LEADER:
            # An election ran in a term we never saw (we were cut off, or slow): another
            # leader may have acknowledged work we lack. Step down, quiet, and listen.
            self._event("newer term")
            self._unsure(now)
            return []
        if self.role == FOLLOWER and self.leader is not None and not newer:
            # It has not seen our leader's term: a challenge sent long ago (we were
            # paused), or one that missed the news. Tell it who leads, and stay.
            return [*sends, (candidate, self.announcement())]
        if self.role == FOLLOWER:
            return sends + self._stand("challenged", now)
        self._event("challenged")  # a candidate already, or waiting for one above
        return sends

    def on_vote(self, vote: m.ElectionVote, now: float) -> Sends:
        """One above us answered: it takes over; wait for its announcement."""
        self._observe(vote.term)
        if self.role == CANDIDATE and rank_of(vote.voter_id) > self.rank:
            self._event("answered")
            self.deadline = now + self.timing.announce_timeout
        return []

    def on_announce(self, announce: m.LeaderAnnounce, now: float) -> Sends:
        """A leader announces itself. Follow it, unless its term is older than ours (or
        equal, with a higher-ranked leader already known): then tell it who leads."""
        leader = rank_of(announce.leader_id)
        if not self._accepts(announce.term, leader):
            if self.leader is not None and leader in self.peers:
                return [(leader, self.announcement())]  # the news it missed: it is deposed
            return []
        self._follow(announce.term, leader, announce.leader_address, now)
        return []

    def _accepts(self, term: int, leader: int) -> bool:
        if leader != self.rank and leader not in self.peers:
            return False
        if term < self.term:
            return False
        if term == self.leader_term and self.leader is not None and self.leader != leader:
            return leader > self.leader  # same term, two leaders: the higher rank stays
        return True

    def _follow(self, term: int, leader: int, address: SocketAddr | None, now: float) -> None:
        changed = self.role != FOLLOWER or self.leader != leader or term > self.term
        self._observe(term)
        if changed:
            self._event("announced")
            self.current = False  # until this leader's copy has arrived whole
        self.leader, self.leader_term = leader, term
        self.leader_address = address if address is not None else self.peers.get(leader)
        self.deadline = self._listen(now)

    def heard_from(self, term: int, leader: int, now: float) -> bool:
        """The leader's replication traffic (its heartbeat). False: refuse it, it is stale."""
        if leader == self.rank or not self._accepts(term, leader):
            return False
        self._follow(term, leader, None, now)
        return True

    def newer_term(self, term: int, now: float) -> bool:
        """A reply carries *term*: if it is newer than ours, a leader is deposed and
        follows again, waiting to hear who leads now. Returns whether it was newer."""
        if term <= self.term:
            return False
        self._observe(term)
        if self.role == LEADER:
            self._event("announced")
            self._unsure(now)
        return True

    def is_current(self, term: int) -> bool:
        """Is *term* the one we are in (not an older one)?"""
        return term == self.term

    def paused(self, now: float) -> None:
        """This process slept past the leader timeout (``SIGSTOP``, swapping): others may
        have elected a leader and moved on. A leader steps down; either way our copy is no
        longer known to be current, and we listen before anything else."""
        if self.role == LEADER:
            self._event("paused")
        self._unsure(now)

    def _unsure(self, now: float) -> None:
        """Our copy may be stale: follow nobody, answer nobody, listen for a leader."""
        self.leader = self.leader_address = None
        self.current = False
        self.deadline = self._listen(now)

    def refusal(self, version: int) -> m.Message | None:
        """What a worker or client is told by a coordinator that does not lead (None if it
        leads): a ``Redirect`` for a v3 peer, an ``Error`` (Unavailable) for older ones."""
        if self.is_leader:
            return None
        leader = self.leader
        address = self.leader_address
        if leader is None or address is None:
            reason = "no leader yet: an election is under way; try again shortly"
        else:
            reason = f"not the leader; the leader is coordinator {leader} at {address}"
        if version >= 3:
            return m.Redirect(
                term=self.term,
                leader_id=coordinator_id(leader) if leader is not None else None,
                leader_address=address,
                reason=reason,
            )
        return m.Error(
            code=ErrorCode.Unavailable,
            message=reason,
            entity_id=f"{address.host}:{address.port}" if address is not None else None,
            details=f"term {self.term}",
        )

    def synced(self) -> None:
        """Our copy of the leader's tasks is complete."""
        self.current = self.was_current = True

    def hand_over(self, now: float) -> Sends:
        """We lead, and a higher-ranked coordinator holds every record we acknowledged:
        with ``takeover``, challenge it (it answers, stands and wins: the bully's rule)."""
        if not self.takeover or self.role != LEADER:
            return []
        return self._stand("outranked", now)
