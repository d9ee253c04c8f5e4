"""Several coordinators as one: links between them, the election, and replication.

A :class:`~vistrit.coordinator.server.Coordinator` started with a
:class:`~vistrit.coordinator.peers.ClusterConfig`
(``--id N --peers ID@HOST:PORT,...``) owns one :class:`Cluster`, which reaches its
coordinator only through the small interface :class:`~vistrit.coordinator.host.Host`,
and wires three things to it:

* **Links** (:mod:`vistrit.coordinator.peers`). For each peer, a
  :class:`~vistrit.coordinator.peers.PeerLink` thread keeps a connection *to* that peer
  open and sends on it; what a peer sends to us arrives on the connection *it* opened,
  through the ordinary server.
* **The election** (:mod:`vistrit.logic.election`): the cluster feeds it the election
  messages, the leader's heartbeats and the passing of time, and sends what it asks.
  When the role changes, the coordinator is promoted (it serves workers and clients) or
  steps down (it closes their connections: they find the leader themselves).
* **Replication** (:mod:`vistrit.logic.replication`): the leader sends each follower a
  snapshot of its tasks when the follower joins, then every journal record as it
  commits it, and holds the answers that depend on the records until the followers
  that are alive have them (:mod:`vistrit.coordinator.waiting`). A follower applies the
  records to its own copy of the tasks (and its own journal), to lead at once if elected.

A follower refuses workers and clients at the handshake with a ``Redirect`` naming the
leader (a v3 peer) or an ``Error`` of code ``Unavailable`` (an older one).

Every method here runs under the coordinator's lock (``link_up``, ``link_down`` and the
election timer, on their own threads, take it themselves). The decisions are pure: the
election's in :mod:`vistrit.logic.election`, the leader's and the follower's bookkeeping
in :mod:`vistrit.logic.replication`; this module sends and logs what they decide.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from vistrit.coordinator.core import Outbox
from vistrit.coordinator.elections import Change, ElectionLog
from vistrit.coordinator.host import Host
from vistrit.coordinator.journal import TermFile
from vistrit.coordinator.peers import ClusterConfig, PeerLink, post_to_all
from vistrit.coordinator.waiting import Answers
from vistrit.leader import NodeAuth
from vistrit.logic.election import LEADER, Election, Sends, coordinator_id, rank_of
from vistrit.logic.replication import FollowerCopy, Replicator, snapshot_parts
from vistrit.logic.store import TaskStore
from vistrit.protocol import messages as m
from vistrit.protocol.types import NodeInfo, NodeType, SocketAddr
from vistrit.session import node_auth
from vistrit.timers import RepeatingTimer
from vistrit.transport import Connection, TLSConfig

log = logging.getLogger(__name__)

#: A snapshot is sent in parts of about this many bytes of records (a frame holds 16 MiB).
SNAPSHOT_PART_BYTES = 4 * 1024 * 1024


class Cluster:
    """The election and replication of one coordinator (see the module docstring)."""

    def __init__(self, host: Host, config: ClusterConfig) -> None:
        self.host = host
        self.config = config
        self.name = host.name
        self.tls: TLSConfig | None = host.tls  # the links are TLS when the coordinator is
        self.links = {rank: PeerLink(self, rank, address) for rank, address in config.peers.items()}
        self.election: Election | None = None
        self.replicator: Replicator[Outbox] | None = None  # while leading
        self.answers: Answers | None = None  # while leading: what waits for replication
        self.copy = FollowerCopy()  # the records this coordinator holds, as a follower
        self._incoming: dict[int, Connection] = {}
        self._last_tick = 0.0
        self._last_beat = 0.0
        self._terms = TermFile(host.data_dir) if host.data_dir is not None else None
        self.history = ElectionLog(host.data_dir)  # every move, with its time (the dashboard)
        self._timer = RepeatingTimer(config.tick, self._on_timer, name=f"{self.name} election")
        self._running = False
        #: Called with (sender rank, our rank, message) for each message from a peer, and
        #: with (our rank, our rank, "event: now Role (term N)") for each election move:
        #: what ``python -m vistrit demo --election`` draws.
        self.tap: Callable[[int, int, m.Message | str], None] | None = None

    @property
    def info(self) -> NodeInfo:
        """This coordinator's NodeInfo, as its links introduce it to peers."""
        return self.host.info

    @property
    def auth(self) -> NodeAuth | None:
        """How this coordinator proves itself to its peers: its coordinator's credential."""
        credentials = self.host.credentials
        return node_auth(NodeType.Coordinator, credentials) if credentials else None

    @property
    def leader_timeout(self) -> float:
        """The election's leader timeout: the links' connect timeout and longest backoff."""
        return self.config.leader_timeout

    @property
    def is_leader(self) -> bool:
        """Whether this coordinator leads now."""
        return self.election is not None and self.election.is_leader

    # -- life cycle -------------------------------------------------------------------------

    def start(self, address: SocketAddr, now: float) -> None:
        """Open the links, and listen for a leader (in the term saved last, if any)."""
        term = self._terms.load() if self._terms is not None else 0
        peers = {rank: SocketAddr(*address) for rank, address in self.config.peers.items()}
        self.election = Election(
            self.config.rank,
            address,
            peers,
            self.config.timing,
            now=now,
            random=random.random,
            term=term,
            takeover=self.config.takeover,
        )
        self._last_tick = now
        self._running = True
        for link in self.links.values():
            link.start()
        self._timer.start()
        others = ", ".join(str(rank) for rank in sorted(self.config.peers))
        log.info(
            "%s: coordinator %d of a cluster with %s (term %d); listening for a leader",
            *(self.name, self.config.rank, others, term),
        )

    def stop(self) -> None:
        """Stop the election timer, close the links and the peers' connections."""
        self._running = False
        self._timer.stop()
        for link in self.links.values():
            link.stop()
        for conn in list(self._incoming.values()):
            conn.close()

    def _on_timer(self) -> None:
        with self.host.lock:
            if self._running:
                self.tick(time.time())

    # -- handshakes -------------------------------------------------------------------------

    def admit(self, hello: m.Handshake, conn: Connection) -> m.HandshakeAck:
        """A coordinator connects to us (its link): accept it if it is one of our peers."""
        rank = rank_of(hello.node_info.id)
        reason = None if rank in self.config.peers else f"coordinator {rank} is not a peer"
        if reason is None:
            old = self._incoming.get(rank)
            if old is not None:
                old.close()  # it restarted: its old link is dead
            self._incoming[rank] = conn
            # It is back: our link to it should be too, at once. A coordinator that starts
            # listens for a leader before it stands; the leader must reach it in time.
            self.links[rank].wake()
        return m.HandshakeAck(
            accepted=reason is None,
            node_id=hello.node_info.id,
            coordinator_info=self.info,
            reason=reason,
        )

    def refusal(self, version: int) -> m.Message | None:
        """What a worker or client is told while we do not lead: :meth:`Election.refusal`."""
        assert self.election is not None
        return self.election.refusal(version)

    def greeting(self, version: int) -> list[m.Message]:
        """Sent to a v3 worker or client after its HandshakeAck: who leads, in which term
        (it refuses a leader whose term is older than one it has seen)."""
        if version < 3 or self.election is None or not self.election.is_leader:
            return []
        return [self.election.announcement()]

    # -- links ------------------------------------------------------------------------------

    def _count(self) -> None:
        """How many coordinators the cluster status reports: this one, and those reached."""
        self.host.set_coordinators(1 + sum(1 for link in self.links.values() if link.conn))

    def link_up(self, rank: int) -> None:
        """Our link to *rank* is open (called by its thread)."""
        with self.host.lock:
            log.debug("%s: link to coordinator %d is up", self.name, rank)
            self._count()
            if self.is_leader:
                self._join(rank, time.time())

    def link_down(self, rank: int) -> None:
        """Our link to *rank* closed (called by its thread)."""
        with self.host.lock:
            log.debug("%s: link to coordinator %d is down", self.name, rank)
            self._count()
            if self.replicator is not None:
                self._post_all(self.replicator.leave(rank))

    def peer_gone(self, rank: int, conn: Connection, now: float) -> None:
        """The connection *rank* opened to us closed. If it was the leader's, stand soon."""
        if self._incoming.get(rank) is conn:
            del self._incoming[rank]
            assert self.election is not None
            if self.election.leader == rank and not self.election.is_leader:
                log.warning(
                    "%s: the connection from leader %d closed; an election follows",
                    self.name,
                    rank,
                )
                self.election.leader_lost(now)

    def _send(self, sends: Sends) -> None:
        for rank, message in sends:
            link = self.links.get(rank)
            if link is not None:
                link.post([message])

    # -- the election -----------------------------------------------------------------------

    def check_pause(self, now: float) -> bool:
        """Was this process asleep (``SIGSTOP``, swapping) for longer than the leader
        timeout? Then the others may have moved on without us: step down and listen.
        Checked before anything else is handled, on the tick and on every peer message."""
        election = self.election
        assert election is not None
        gap = now - self._last_tick
        self._last_tick = max(self._last_tick, now)
        if gap <= self.config.leader_timeout:
            return False
        log.warning("%s: this process was paused for %.1f s; listening first", self.name, gap)
        election.paused(now)
        self._after([], now)
        return True

    def tick(self, now: float) -> None:
        """The passing of time: a pause, election deadlines, silent followers, heartbeats."""
        election = self.election
        assert election is not None
        paused = self.check_pause(now)
        self._after(election.tick(now), now)
        if self.replicator is not None:
            released, dropped = self.replicator.tick(now, paused)
            for rank in dropped:
                why = f"did not acknowledge within {self.config.replication_timeout:g} s"
                log.warning("%s: coordinator %d %s; not waiting for it", self.name, rank, why)
            self._post_all(released)
            if not self.replicator.in_flight():  # a follower it waited for was dropped
                self._send_records(self.replicator.flush())
            if now - self._last_beat >= self.config.leader_heartbeat:
                self._last_beat = now
                self._send_records(self.replicator.flush(), beat=True)
                self.replicator.probe(now)

    def on_message(self, rank: int, message: m.Message, now: float) -> None:
        """A message from the coordinator *rank* (on the link it opened to us): an election
        message goes to the election (:data:`ELECTION`), a replication message to its
        handler (:data:`REPLICATION`)."""
        election = self.election
        assert election is not None
        self.check_pause(now)
        why = election.implausible(rank, message)
        if why is not None:
            log.warning("%s: ignored %s from %d: %s", self.name, message.WIRE_NAME, rank, why)
            return
        if self.tap is not None:
            self.tap(rank, self.config.rank, message)
        decide = ELECTION.get(type(message))
        if decide is not None:
            self._after(decide(election, message, now), now)
            return
        handler = REPLICATION.get(type(message))
        if handler is not None:
            handler(self, rank, message, now)
        elif not isinstance(message, m.Disconnect):
            log.warning("%s: coordinator %d sent %s; ignored", self.name, rank, message.WIRE_NAME)

    def _after(self, sends: Sends, now: float) -> None:
        """Send what the election asked, log its moves, and act on a change of role."""
        election = self.election
        assert election is not None
        was_leader = self.replicator is not None
        for event, role, term in election.history:
            log.info("%s: %s: now %s (term %d)", self.name, event, role, term)
            self.history.record(Change(now, event, role, term, election.leader))
            if self.tap is not None:
                self.tap(self.config.rank, self.config.rank, f"{event}: now {role} (term {term})")
        election.history.clear()
        if self._terms is not None:
            self._terms.save(election.term)
        if election.role == LEADER and not was_leader:
            self._promote(now)
            assert self.replicator is not None  # the joined followers were announced to
            sends = [
                (rank, message)
                for rank, message in sends
                if not isinstance(message, m.LeaderAnnounce)
                or rank not in self.replicator.followers
            ]
        elif election.role != LEADER and was_leader:
            self._step_down()
        self._send(sends)

    def _promote(self, now: float) -> None:
        assert self.election is not None
        disk = self.host.syncer is not None  # its answers wait for our own fsync too
        self.replicator = Replicator(self.config.replication_timeout, disk)
        self.answers = Answers(self.replicator)
        self.copy = FollowerCopy()  # we lead: the records we follow are our own now
        self._count()
        self.host.adopt_orphans(now)  # before any snapshot: every follower's copy has them
        term, held = self.election.term, self.host.describe()
        log.warning("%s: leading in term %d with %s", self.name, term, held)
        for rank, link in self.links.items():
            if link.conn is not None:
                self._join(rank, now)

    def _step_down(self) -> None:
        assert self.replicator is not None and self.election is not None
        dropped, self.replicator, self.answers = self.replicator.discard(), None, None
        term = self.election.term
        why = f"{dropped} unreplicated answer(s) dropped; closing the workers' and clients'"
        log.warning("%s: no longer the leader (term %d); %s connections", self.name, term, why)
        self.host.close_clients()

    # -- replication: the leader ------------------------------------------------------------

    def _join(self, rank: int, now: float) -> None:
        """Bring a follower in: tell it who leads, then send it everything (a snapshot)."""
        assert self.replicator is not None and self.election is not None
        self._send_records(self.replicator.flush())  # the others first: a snapshot has all
        index = self.replicator.join(rank, now)
        frames = self.host.live_records()
        parts = snapshot_parts(frames, SNAPSHOT_PART_BYTES)
        term, me = self.election.term, coordinator_id(self.config.rank)
        messages: list[m.Message] = [self.election.announcement()]
        for number, records in enumerate(parts):
            last = number == len(parts) - 1
            messages.append(
                m.ReplicaSnapshot(
                    term=term, leader_id=me, index=index, part=number, last=last,
                    records=tuple(records),
                )
            )  # fmt: skip
        self.links[rank].post(messages)
        what = f"snapshot of {len(frames)} record(s) in {len(parts)} part(s)"
        log.info("%s: coordinator %d joins: %s", self.name, rank, what)

    def commit(
        self, frames: list[bytes], outbox: Outbox, store: TaskStore, now: float
    ) -> list[Outbox]:
        """The leader journaled *frames*: replicate them; returns the outboxes that may go
        now (what depends on the frames only once the followers that are alive hold them:
        :mod:`vistrit.coordinator.waiting`)."""
        if self.replicator is None or self.answers is None:
            return [outbox]  # a follower: its own core decides nothing that must last
        if frames:
            self._send_records(self.replicator.outgoing(frames, now))  # now, or with the next
        return self.answers.commit(outbox, store, bool(frames))

    def _send_records(self, batch: tuple[int, list[bytes]] | None, beat: bool = False) -> None:
        """Send numbered records to every follower (with none and *beat*: an empty
        ``Replicate``, the leader's heartbeat)."""
        assert self.replicator is not None and self.election is not None
        if batch is None and not beat:
            return
        first, frames = batch or (self.replicator.sent + 1, [])
        me, term = coordinator_id(self.config.rank), self.election.term
        message = m.Replicate(term=term, leader_id=me, index=first, records=tuple(frames))
        post_to_all((self.links[rank] for rank in self.replicator.followers), message)

    def _on_ack(self, rank: int, ack: m.ReplicateAck, now: float) -> None:
        election = self.election
        assert election is not None
        if election.newer_term(ack.term, now):
            why = f"coordinator {rank} knows term {ack.term}, newer than ours: we were deposed"
            log.warning("%s: %s", self.name, why)
            self._after([], now)
            return
        if self.replicator is None or not election.is_current(ack.term):
            return
        if ack.accepted:
            self._post_all(self.replicator.acked(rank, ack.index))
            if not self.replicator.in_flight():  # what waited for it goes, all at once
                self._send_records(self.replicator.flush())
            self._maybe_hand_over(rank, now)
        elif self.replicator.snapshot_stale(rank, now):
            log.info("%s: coordinator %d is missing records; sending a snapshot", self.name, rank)
            self._join(rank, now)

    def _maybe_hand_over(self, rank: int, now: float) -> None:
        """The bully's takeover, made safe: a follower ranked above us that holds every
        record we numbered (so every one we acknowledged) is challenged, and wins."""
        assert self.replicator is not None and self.election is not None
        if not self.config.takeover or rank < self.config.rank:
            return
        if not self.replicator.holds_everything(rank):
            return
        log.warning(
            "%s: coordinator %d ranks above us and holds every record: handing over",
            self.name,
            rank,
        )
        self._after(self.election.hand_over(now), now)

    def _post_all(self, outboxes: list[Outbox]) -> None:
        """Send what the replicator let go in one post: a node's messages in one write."""
        if self.answers is not None:
            self.answers.released(outboxes)
        self.host.post([sent for outbox in outboxes for sent in outbox])

    # -- replication: a follower ------------------------------------------------------------

    def _answer(self, leader: int, accepted: bool) -> None:
        assert self.election is not None
        ack = m.ReplicateAck(
            term=self.election.term,
            follower_id=coordinator_id(self.config.rank),
            index=self.copy.applied,
            accepted=accepted,
        )
        link = self.links.get(leader)
        if link is not None:
            link.post([ack])

    def _heard(self, leader: int, term: int, now: float) -> bool:
        """Replication traffic from *leader*: follow it, or refuse it (an older term)."""
        election = self.election
        assert election is not None
        accepted = election.heard_from(term, leader, now)
        self._after([], now)
        if accepted:
            return True
        log.info(
            "%s: refused records from coordinator %d of term %d (we know term %d)",
            self.name,
            leader,
            term,
            election.term,
        )
        self._answer(leader, False)
        return False

    def _on_replicate(self, rank: int, message: m.Replicate, now: float) -> None:
        leader = rank_of(message.leader_id)
        if not self._heard(leader, message.term, now):
            return
        if not self.copy.continues(message.term, leader, message.index):
            self._answer(leader, False)  # a gap: the leader sends a snapshot
            return
        if message.records and not self.host.apply_records(message.records, now):
            self._answer(leader, False)
            return
        self.copy.applied_records(len(message.records))
        assert self.election is not None
        self.election.current = True  # the leader's copy, up to its latest record
        self._answer(leader, True)

    def _on_snapshot(self, rank: int, message: m.ReplicaSnapshot, now: float) -> None:
        leader = rank_of(message.leader_id)
        if not self._heard(leader, message.term, now):
            return
        assert self.election is not None
        if not self.copy.snapshot_part(message.part, message.records):
            self._answer(leader, False)  # the next gap asks for a new snapshot
            return
        if not message.last:
            return
        records = self.copy.snapshot_complete(message.term, leader, message.index)
        if not self.host.replace_copy(tuple(records), now, self.election.was_current):
            self.copy.broken()
            self._answer(leader, False)
            return
        log.info("%s: in sync with leader %d: %s", self.name, leader, self.host.describe())
        self._answer(leader, True)
        self.election.synced()


#: The election's messages, each decided by the election (which says what to send).
ELECTION: dict[type[m.Message], Callable[[Election, Any, float], Sends]] = {
    m.ElectionStart: Election.on_start,
    m.ElectionVote: Election.on_vote,
    m.LeaderAnnounce: Election.on_announce,
}

#: The replication messages, each handled by the cluster.
REPLICATION: dict[type[m.Message], Callable[[Cluster, int, Any, float], None]] = {
    m.Replicate: Cluster._on_replicate,
    m.ReplicaSnapshot: Cluster._on_snapshot,
    m.ReplicateAck: Cluster._on_ack,
}


__all__ = ["ELECTION", "REPLICATION", "SNAPSHOT_PART_BYTES", "Cluster"]
