"""The bully election and the leader's replication bookkeeping, as pure logic: a simulated
network of :class:`Election` objects on a fake clock, delivering messages at once."""

from __future__ import annotations

import itertools
import uuid

import pytest

from vistrit.logic.election import (
    CANDIDATE,
    FOLLOWER,
    ROLES,
    STALE_WAIT,
    TRANSITIONS,
    WAITING,
    Election,
    IllegalElectionEvent,
    Timing,
    coordinator_id,
    rank_of,
)
from vistrit.logic.replication import Replicator
from vistrit.protocol import messages as m
from vistrit.protocol.types import SocketAddr

pytestmark = pytest.mark.timeout(30)

TIMING = Timing(leader_timeout=0.5, answer_timeout=0.2, announce_timeout=1.0, jitter=0.1)


def address(rank: int) -> SocketAddr:
    return SocketAddr("127.0.0.1", 7000 + rank)


class Net:
    """Coordinators 1..n; ``down`` ones neither send nor receive; ``cut`` pairs are
    partitioned from each other."""

    def __init__(self, count: int, *, takeover: bool = True, seed: int = 1) -> None:
        self.now = 0.0
        counter = itertools.count(seed)
        self.nodes = {
            rank: Election(
                rank,
                address(rank),
                {r: address(r) for r in range(1, count + 1) if r != rank},
                TIMING,
                now=self.now,
                random=lambda: (next(counter) % 10) / 10,  # different for each call
                takeover=takeover,
            )
            for rank in range(1, count + 1)
        }
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()
        self.sent: list[tuple[int, int, str]] = []  # (from, to, message name)
        self.snapshots = True  # a follower's copy is complete with the leader's first beat

    def deliver(self, sender: int, sends: list[tuple[int, m.Message]]) -> None:
        queue = [(sender, to, message) for to, message in sends]
        while queue:
            frm, to, message = queue.pop(0)
            if to in self.down or frozenset((frm, to)) in self.cut:
                continue
            self.sent.append((frm, to, message.WIRE_NAME))
            node = self.nodes[to]
            if isinstance(message, m.ElectionStart):
                replies = node.on_start(message, self.now)
            elif isinstance(message, m.ElectionVote):
                replies = node.on_vote(message, self.now)
            else:
                assert isinstance(message, m.LeaderAnnounce)
                replies = node.on_announce(message, self.now)
            queue += [(to, dest, reply) for dest, reply in replies]

    def run(self, seconds: float, step: float = 0.05) -> None:
        """Let time pass, ticking every node; the leader 'heartbeats' its followers."""
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for rank, node in self.nodes.items():
                if rank in self.down:
                    continue
                self.deliver(rank, node.tick(self.now))
                if node.is_leader:  # its heartbeat; the first one brings the whole copy
                    for other in self.live(rank):
                        follower = self.nodes[other]
                        heard = follower.heard_from(node.term, rank, self.now)
                        if heard and self.snapshots and not follower.current:
                            follower.synced()

    def live(self, rank: int) -> list[int]:
        return [
            r
            for r in self.nodes
            if r != rank and r not in self.down and frozenset((r, rank)) not in self.cut
        ]

    def leaders(self) -> list[int]:
        return [r for r, node in self.nodes.items() if node.is_leader and r not in self.down]

    def settled(self) -> int:
        """The one leader every live node follows."""
        assert len(self.leaders()) == 1, self.leaders()
        leader = self.leaders()[0]
        for rank, node in self.nodes.items():
            if rank not in self.down:
                assert node.leader == leader, (rank, node.role, node.leader)
        return leader


def test_the_table_covers_every_role_and_every_role_can_be_left() -> None:
    assert {role for role, _ in TRANSITIONS} == set(ROLES)
    assert set(TRANSITIONS.values()) == set(ROLES)
    election = Net(2).nodes[1]
    with pytest.raises(IllegalElectionEvent, match="'unanswered' cannot happen to a Follower"):
        election._event("unanswered")


def test_ids_carry_the_rank_and_bad_ranks_are_refused() -> None:
    assert coordinator_id(3) == uuid.UUID("00000000-0000-0000-0000-000000000003")
    assert rank_of(coordinator_id(42)) == 42
    with pytest.raises(ValueError, match="positive"):
        Election(0, address(0), {1: address(1)}, TIMING, now=0, random=lambda: 0)
    with pytest.raises(ValueError, match="unlike its peers"):
        Election(1, address(1), {1: address(1)}, TIMING, now=0, random=lambda: 0)


def test_a_cold_start_elects_the_highest_once() -> None:
    net = Net(3)
    net.run(1.0)
    assert net.settled() == 3
    terms = {node.term for node in net.nodes.values()}
    assert len(terms) == 1
    announces = [s for s in net.sent if s[2] == "LeaderAnnounce" and s[0] == 3]
    assert {to for _, to, _ in announces} == {1, 2}


def test_the_bully_messages_go_up_the_answers_down() -> None:
    net = Net(3)
    net.nodes[1].deadline = 0.0  # 1 suspects first
    net.run(0.05)
    starts = [(a, b) for a, b, name in net.sent if name == "ElectionStart"]
    votes = [(a, b) for a, b, name in net.sent if name == "ElectionVote"]
    assert all(a < b for a, b in starts) and all(a > b for a, b in votes)
    assert (1, 2) in starts and (1, 3) in starts and (2, 1) in votes and (3, 1) in votes
    assert ("answered", WAITING) in [h[:2] for h in net.nodes[1].history]
    assert net.settled() == 3


def test_the_leader_dies_the_next_highest_takes_over_in_a_newer_term() -> None:
    net = Net(3)
    net.run(1.0)
    old_term = net.nodes[3].term
    net.down.add(3)
    net.run(1.5)
    assert net.settled() == 2
    assert net.nodes[2].term > old_term and net.nodes[1].term == net.nodes[2].term


def test_the_last_coordinator_standing_leads() -> None:
    net = Net(3)
    net.run(1.0)
    net.down |= {2, 3}
    net.run(1.5)
    assert net.settled() == 1


def test_a_candidate_answered_but_never_announced_to_stands_again() -> None:
    net = Net(2)
    one = net.nodes[1]
    one.deadline = 0.0
    net.deliver(1, one.tick(0.0))  # 2 answers and wins at once (nobody above it)
    assert net.settled() == 2
    net.down.add(2)
    one._event("leader silent")  # a fresh election, and 2's answer comes, then 2 dies
    one.on_vote(
        m.ElectionVote(term=one.term, voter_id=coordinator_id(2), vote_for=coordinator_id(2)), 0.0
    )
    assert one.role == WAITING
    net.now = TIMING.announce_timeout + 0.01
    net.deliver(1, one.tick(net.now))
    assert one.role == CANDIDATE
    net.run(0.5)
    assert net.settled() == 1


def test_an_announcement_from_an_older_term_is_refused_and_answered_with_the_news() -> None:
    net = Net(3)
    net.run(1.0)
    two = net.nodes[2]
    stale = m.LeaderAnnounce(
        term=two.term - 1, leader_id=coordinator_id(1), leader_address=address(1)
    )
    replies = two.on_announce(stale, net.now)
    assert two.leader == 3
    assert replies == [
        (1, m.LeaderAnnounce(term=two.term, leader_id=coordinator_id(3), leader_address=address(3)))
    ]
    assert not two.heard_from(two.term - 1, 1, net.now)


def test_two_leaders_of_one_term_settle_by_rank() -> None:
    net = Net(3)
    net.run(1.0)
    one = net.nodes[1]
    same = m.LeaderAnnounce(term=one.term, leader_id=coordinator_id(2), leader_address=address(2))
    one.on_announce(same, net.now)
    assert one.leader == 3  # 2 ranks below the leader it knows for this term
    three = net.nodes[3]
    rival = m.LeaderAnnounce(
        term=three.term, leader_id=coordinator_id(2), leader_address=address(2)
    )
    assert three.on_announce(rival, net.now) == [(2, three.announcement())]
    assert three.is_leader


def test_a_newer_term_deposes_a_leader() -> None:
    net = Net(2)
    net.run(1.0)
    two = net.nodes[2]
    two.newer_term(two.term + 3, net.now)
    assert two.role == FOLLOWER and two.leader is None and not two.current
    two.newer_term(1, net.now)  # older: nothing
    assert two.role == FOLLOWER


def test_a_leader_hands_over_to_a_higher_coordinator_that_rejoined() -> None:
    net = Net(3)
    net.down.add(3)
    net.run(1.5)
    assert net.settled() == 2
    net.down.discard(3)
    three = net.nodes[3]
    three.role, three.leader, three.current = FOLLOWER, None, True
    three.deadline = net.now + 10  # it listens; it hears 2 before its deadline
    net.snapshots = False
    net.run(0.2)
    assert three.leader == 2 and not three.current  # following, copy not yet complete
    three.synced()  # the snapshot arrived whole; 2 sees it acknowledge everything
    net.deliver(2, net.nodes[2].hand_over(net.now))
    net.run(0.5)
    assert net.settled() == 3
    assert [event for event, _, _ in net.nodes[2].history][-3:] == [
        "outranked",
        "answered",
        "announced",
    ]
    assert [event for event, _, _ in three.history][-2:] == ["challenged", "unanswered"]


def test_without_takeover_the_leader_keeps_leading() -> None:
    net = Net(3, takeover=False)
    net.down.add(3)
    net.run(1.5)
    net.down.discard(3)
    three = net.nodes[3]
    three.role, three.leader = FOLLOWER, None
    three.deadline = net.now + 10
    net.run(0.2)
    three.synced()
    assert net.nodes[2].hand_over(net.now) == []
    net.run(1.0)
    assert net.settled() == 2


def test_a_coordinator_without_a_current_copy_keeps_quiet_and_stands_late() -> None:
    net = Net(3)
    net.run(1.0)
    net.snapshots = False
    net.nodes[2].current = False  # e.g. its snapshot is still arriving
    net.run(0.1)  # the leader's next heartbeat: 2 now listens for longer
    net.down.add(3)
    net.run(1.5)
    assert net.settled() == 1  # 2 did not answer 1's challenge
    net.down.add(1)
    two = net.nodes[2]
    two.deadline = net.now + TIMING.leader_timeout * STALE_WAIT
    net.run(TIMING.leader_timeout * STALE_WAIT - 0.2)
    assert not two.is_leader
    net.run(0.5)
    assert two.is_leader  # nobody else: someone must lead


def test_a_coordinator_restarted_from_a_saved_term_is_not_current() -> None:
    """Killed and restarted, a coordinator holds the copy it had: it must not win an
    election with it (the chaos lab lost 49 tasks to one that did, the leader's link to it
    being slow: it stood at once, the leader saw its newer term and stepped down)."""
    fresh = Election(2, address(2), {3: address(3)}, TIMING, now=0, random=lambda: 0)
    assert fresh.current  # a cluster's first start: nothing to be stale about
    again = Election(2, address(2), {3: address(3)}, TIMING, now=0, random=lambda: 0, term=7)
    assert not again.current
    assert again.deadline == TIMING.leader_timeout * STALE_WAIT  # listens longer first
    assert again.tick(TIMING.leader_timeout * 2) == []  # no leader yet: still listening
    start = m.ElectionStart(term=7, candidate_id=coordinator_id(1), priority=1)
    assert again.on_start(start, 1.0) == []  # keeps quiet: not current
    assert again.heard_from(7, 3, 1.2) and again.leader == 3
    again.synced()  # the leader's copy arrived whole
    assert again.current


def test_a_paused_leader_steps_down_and_listens() -> None:
    net = Net(3)
    net.run(1.0)
    three = net.nodes[3]
    three.paused(net.now)
    assert three.role == FOLLOWER and not three.current and three.leader is None
    assert three.history[-1][:2] == ("paused", FOLLOWER)


def test_a_late_challenge_to_a_follower_is_told_who_leads() -> None:
    net = Net(3)
    net.run(1.0)
    two = net.nodes[2]
    old = m.ElectionStart(term=1, candidate_id=coordinator_id(1), priority=1)
    replies = two.on_start(old, net.now)
    assert [type(r).__name__ for _, r in replies] == ["ElectionVote", "LeaderAnnounce"]
    assert two.role == FOLLOWER and two.leader == 3


def test_a_challenge_to_the_leader_is_answered_with_its_announcement() -> None:
    net = Net(3)
    net.run(1.0)
    three = net.nodes[3]
    challenge = m.ElectionStart(term=three.term, candidate_id=coordinator_id(1), priority=1)
    replies = three.on_start(challenge, net.now)
    assert [type(r).__name__ for _, r in replies] == ["ElectionVote", "LeaderAnnounce"]
    newer = m.ElectionStart(term=three.term + 5, candidate_id=coordinator_id(1), priority=1)
    assert three.on_start(newer, net.now) == []  # an election ran without it: it may be
    assert three.role == FOLLOWER and not three.current and three.term == newer.term  # deposed


def test_challenges_from_strangers_or_from_above_are_ignored() -> None:
    net = Net(3)
    two = net.nodes[2]
    assert (
        two.on_start(m.ElectionStart(term=9, candidate_id=coordinator_id(3), priority=3), 0) == []
    )
    assert (
        two.on_start(m.ElectionStart(term=9, candidate_id=coordinator_id(8), priority=8), 0) == []
    )
    assert two.term == 9 and two.role == FOLLOWER


def test_followers_deadlines_are_jittered() -> None:
    net = Net(5)
    deadlines = {round(node.deadline, 3) for node in net.nodes.values()}
    assert len(deadlines) > 1
    assert all(
        TIMING.leader_timeout <= d <= TIMING.leader_timeout + TIMING.jitter for d in deadlines
    )


def test_leader_lost_makes_a_follower_stand_after_the_jitter_only() -> None:
    net = Net(3)
    net.run(1.0)
    two = net.nodes[2]
    two.leader_lost(net.now)
    assert two.deadline <= net.now + TIMING.jitter and two.leader is None


# -- the leader's bookkeeping ---------------------------------------------------------------


def test_held_answers_wait_for_every_required_follower_and_keep_their_order() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.join(1, 0.0)
    replicator.join(2, 0.0)
    assert not replicator.followers[1].required  # not until it holds its snapshot
    replicator.acked(1, 0)
    replicator.acked(2, 0)
    assert replicator.followers[1].required
    first = replicator.record(2, 0.0)
    assert first == 1 and replicator.index == 2
    assert replicator.hold("ack a", 2) == []
    assert replicator.hold("no record", None) == []  # must not overtake "ack a"
    assert replicator.acked(1, 2) == []
    assert replicator.acked(2, 1) == []
    assert replicator.acked(2, 2) == ["ack a", "no record"]
    assert replicator.hold("alone", None) == ["alone"]  # nothing held: goes at once


def test_a_silent_follower_stops_being_waited_for_and_comes_back_when_caught_up() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.join(1, 0.0)
    replicator.join(2, 0.0)
    replicator.acked(1, 0)
    replicator.acked(2, 0)
    replicator.record(1, 0.0)
    replicator.hold("ack", 1)
    assert replicator.acked(1, 1) == []
    assert replicator.tick(0.5, paused=False) == ([], [])
    assert replicator.tick(1.5, paused=False) == (["ack"], [2])
    replicator.record(1, 2.0)
    assert replicator.hold("next", 2) == []
    assert replicator.acked(1, 2) == ["next"]  # 2 is not waited for
    replicator.acked(2, 2)
    assert replicator.followers[2].required  # caught up: waited for again


def test_a_pause_of_the_leader_is_not_held_against_its_followers() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.join(1, 0.0)
    replicator.acked(1, 0)
    replicator.record(1, 0.0)
    replicator.hold("ack", 1)
    assert replicator.tick(30.0, paused=True) == ([], [])
    assert replicator.followers[1].required
    assert replicator.tick(30.5, paused=False) == ([], [])
    assert replicator.tick(31.5, paused=False) == (["ack"], [1])


def test_a_joining_follower_is_not_waited_for_until_it_holds_its_snapshot() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.record(5, 0.0)
    assert replicator.join(1, 0.0) == 5  # the snapshot covers records 1 to 5
    replicator.record(1, 0.0)
    assert replicator.hold("ack", 6) == ["ack"]  # 1 is still loading its snapshot
    assert replicator.acked(1, 5) == [] and not replicator.followers[1].required
    replicator.acked(1, 6)
    assert replicator.followers[1].required


def test_a_follower_that_leaves_releases_and_discard_drops() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.join(1, 0.0)
    replicator.acked(1, 0)
    replicator.record(1, 0.0)
    assert replicator.hold("ack", 1) == []
    assert replicator.leave(1) == ["ack"]
    replicator.join(2, 0.0)
    replicator.acked(2, 1)
    replicator.record(1, 0.0)
    replicator.hold("lost", 2)
    replicator.probe(0.0)
    assert replicator.held == 1 and replicator.discard() == 1 and replicator.held == 0
    assert replicator.acked(9, 5) == []  # a stranger's acknowledgement changes nothing
