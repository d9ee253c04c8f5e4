"""The coordinator's threads: a ``socketserver`` accept loop, one handler thread per
connection, one writer thread per connection, a purge timer, and (``--fsync always``) the
journal's ``fsync`` thread (:mod:`vistrit.coordinator.syncing`).

Each handler thread runs :meth:`Coordinator._serve` for its connection:

1. wait (at most ``handshake_timeout``) for a ``Handshake``; anything else, or nothing,
   gets an ``Error`` and the connection is closed;
2. then, for each message: take the lock, let :class:`~vistrit.coordinator.core.CoordinatorCore`
   decide, and queue its outbox on the addressed connections (still under the lock, so
   every peer receives messages in the order they were decided); the writer threads do
   the actual sends, so a slow peer never holds the lock;
3. when the connection ends, for whatever reason, tell the core the peer left (a worker's
   tasks go back to the queue).

A bad frame gets an ``Error`` with the matching ``ErrorCode`` and ends that connection
only; every other connection carries on.

One of several coordinators (a :class:`~vistrit.coordinator.peers.ClusterConfig`) also
has a :class:`~vistrit.coordinator.cluster.Cluster`: connections from the other
coordinators are handed to it, workers and clients are served only while this one leads
(else redirected), and what is committed is replicated before it is answered.

Read next: :mod:`vistrit.worker`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from vistrit import defaults
from vistrit.coordinator import offers, recovery
from vistrit.coordinator.cluster import Cluster
from vistrit.coordinator.copying import CopyKeeping
from vistrit.coordinator.core import CoordinatorCore, IllegalTransition, Outbox
from vistrit.coordinator.gate import Gate
from vistrit.coordinator.journal import Journal, encode_records
from vistrit.coordinator.membership import Peer
from vistrit.coordinator.peers import ClusterConfig
from vistrit.coordinator.syncing import Syncer
from vistrit.credentials import Credentials, default_path
from vistrit.defaults import DEFAULT_LIMITS, DEFAULT_POLICY, Limits, Policy
from vistrit.logic.election import coordinator_id, rank_of
from vistrit.protocol import messages as m
from vistrit.protocol import remembered
from vistrit.protocol.catalogue import NEWEST_VERSION, agree_version
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.frame import MAX_PAYLOAD
from vistrit.protocol.types import NodeInfo, NodeType, SocketAddr, introduce
from vistrit.timers import RepeatingTimer
from vistrit.transport import Connection, ConnectionClosed, FrameServer, resolve
from vistrit.transport.server import read_batches
from vistrit.transport.tls import TLSConfig

log = logging.getLogger(__name__)

#: In a cluster, the room a TaskSubmit frame leaves under the frame cap, for its Replicate.
RECORD_MARGIN = 1024


class Coordinator(CopyKeeping):
    """A coordinator node. For callers: ``start()``, ``stop()``, ``address``; or ``with``.

    ``bind`` is ``(host, port)``; port 0 picks a free port (read it from ``address``).
    """

    def __init__(
        self,
        bind: tuple[str, int] = (defaults.HOST, defaults.PORT),
        *,
        policy: Policy = DEFAULT_POLICY,
        limits: Limits = DEFAULT_LIMITS,
        tick_interval: float = defaults.TICK_INTERVAL,
        data_dir: Path | None = None,
        fsync: str = "always",
        name: str = "coordinator",
        cluster: ClusterConfig | None = None,
        credentials: Credentials | None = None,
        allow_unauthenticated: bool = False,
        repair: bool = False,
        tls: TLSConfig | None = None,
    ) -> None:
        self.policy = policy
        #: The secrets nodes must prove they hold; None: the token file at
        #: :func:`~vistrit.credentials.default_path`, created if missing, read at start.
        self.credentials = credentials
        self.allow_unauthenticated = allow_unauthenticated
        self.repair = repair
        self.limits = limits
        self.tls = tls  # every connection TLS, in and out (see vistrit.transport.tls)
        self.gate: Gate | None = None
        #: Why the coordinator stopped by itself (a journal it could not write), if it did.
        self.failure: str | None = None
        #: Set once the coordinator has stopped, asked to or by itself.
        self.stopped = threading.Event()
        #: Called (from another thread) when the coordinator stops by itself.
        self.on_failure: Callable[[], object] | None = None
        #: Given each batch in ("in", sender) and out ("out", addressee), under the lock.
        self.frame_tap: Callable[[str, uuid.UUID, list[m.Message]], object] | None = None
        self._stopping = threading.Lock()
        self.cluster_config = cluster
        self.cluster: Cluster | None = None
        self.tick_interval = tick_interval
        self.data_dir = data_dir
        self.fsync = fsync
        self.journal: Journal | None = None
        self.syncer: Syncer | None = None  # with --fsync always: the fsync off the lock
        self._last_purge, self._forgotten = 0.0, 0  # the log says how many, now and then
        self.name = name
        self._bind = bind
        self.lock = threading.Lock()
        self._connections: dict[uuid.UUID, Connection] = {}
        self._server: FrameServer | None = None
        self._ticker = RepeatingTimer(tick_interval, self._tick, name=f"{name} tick")
        self.core: CoordinatorCore | None = None
        self.orphans = recovery.Orphans(policy.retention)  # what a replaced copy had finished

    @property
    def address(self) -> tuple[str, int]:
        """The address the coordinator listens on (the real port, if bound to port 0)."""
        if self._server is None:
            raise RuntimeError("the coordinator is not started")
        return self._server.address

    def start(self) -> None:
        """Bind, and serve in background threads. Raises ``OSError`` if the port is taken,
        :class:`~vistrit.credentials.CredentialsError` if the token file is unusable."""
        if self.credentials is None:
            self.credentials = Credentials.load_or_create(default_path())
        remembered.enable()  # a coordinator passes tasks and results on as they came
        self._server = FrameServer(self._bind, self._serve, self.limits, self.tls)
        host, port = self._server.address
        now = time.time()
        shown = SocketAddr(host if host != "0.0.0.0" else "127.0.0.1", port)
        config = self.cluster_config
        if config is not None and config.advertise is not None:
            shown = SocketAddr(resolve(config.advertise[0]), config.advertise[1])
        node_id = coordinator_id(config.rank) if config is not None else uuid.uuid4()
        self._info = introduce(node_id, NodeType.Coordinator, shown, self.name, int(now))
        self.gate = Gate(
            self.credentials,
            self._info,
            allow_unauthenticated=self.allow_unauthenticated,
            timeout=self.limits.handshake_timeout,
            name=self.name,
        )
        self._started_at = now
        self.core = self._new_core()
        if self.data_dir is not None:
            self.journal = Journal(self.data_dir, self.fsync, self.repair)
            entries = self.journal.replay()
            recovery.restore(self.core, entries, now)
            self.journal.append(self.core.take_journal())
            held = f"{len(entries)} frame(s); {self.describe()} remembered"
            log.info("%s: journal %s: %s", self.name, self.journal.path, held)
        if config is not None:
            self.cluster = Cluster(self, config)
        if self.journal is not None and self.fsync == "always":  # the fsync off the lock
            self.syncer = Syncer(
                self.journal, self.lock, self.name, self.post, self._fail, self.cluster
            )
            self.syncer.start()
        if self.cluster is not None:
            self.cluster.start(shown, now)
        self._server.start(name=f"{self.name} accept")
        self._last_purge = now
        self._ticker.start()
        log.info(
            "%s: listening on %s:%d (strategy %s)", self.name, host, port, self.policy.strategy
        )
        where = self.credentials.path or "credentials given in code"
        older = "; older nodes admitted unauthenticated" if self.allow_unauthenticated else ""
        log.info("%s: nodes authenticate with %s%s", self.name, where, older)

    def stop(self) -> None:
        """Close every connection and join every thread; prompt, and leaves no port behind.
        Idempotent; a second caller waits for the first to finish."""
        with self._stopping:
            if not self.stopped.is_set():
                self._stop()

    def _stop(self) -> None:
        self._ticker.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
            log.info("%s: stopped", self.name)
        if self.syncer is not None:
            self.syncer.stop()
        if self.journal is not None:
            with self.lock:
                try:
                    self.journal.close()
                except OSError as exc:
                    log.error("%s: closing the journal: %s", self.name, exc)
        self.stopped.set()

    def _fail(self, reason: str) -> None:
        """Something that must last could not be made to: acknowledge nothing more. Stop,
        and say why (``failure``; the CLI exits non-zero with it). Under the lock."""
        if self.failure is None:
            self.failure = reason
            log.critical("%s: %s; stopping", self.name, reason)
            threading.Thread(target=self.stop, name=f"{self.name} stop").start()
            if self.on_failure is not None:
                self.on_failure()

    def _new_core(self) -> CoordinatorCore:
        core = CoordinatorCore(
            self._info, started_at=self._started_at, policy=self.policy, rng=random.Random()
        )
        if self.cluster_config is not None:  # a record must fit inside a Replicate frame
            core.record_limit = MAX_PAYLOAD - RECORD_MARGIN
        return core

    # -- what the cluster asks of its coordinator (cluster.Host) ------------------------------

    @property
    def info(self) -> NodeInfo:
        """This coordinator's NodeInfo, as it introduces itself."""
        return self._info

    def close_clients(self) -> None:
        """Close every worker's and client's connection (deposed: they find the leader)."""
        for conn in list(self._connections.values()):
            conn.close()

    def set_coordinators(self, count: int) -> None:
        """How many coordinators the cluster status reports."""
        if self.core is not None:
            self.core.coordinators = count

    def __enter__(self) -> Coordinator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one connection ---------------------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        peer = self._handshake(conn)
        if peer is None:
            return
        if peer.kind == NodeType.Coordinator:
            self._serve_peer(peer, conn)
            return
        conn.name = f"{peer.kind.name.lower()} {peer.name or str(peer.id)[:8]}"
        log.info("%s: %s joined from %s (v%d)", self.name, conn.name, conn.peer, peer.version)

        def handle(batch: list[m.Message]) -> bool:
            self._apply(peer, batch)
            return not any(isinstance(message, m.Disconnect) for message in batch)

        try:
            read_batches(conn, handle, self.limits.idle_timeout)
        finally:
            conn.close()
            with self.lock:
                if self._connections.get(peer.id) is conn:
                    del self._connections[peer.id]
                assert self.core is not None
                held = self.core.registry.leaving_note(peer.id)
                self._commit(self.core.leave(peer.id, time.time()))
            conn.join_writer()
            log.info("%s: %s left%s", self.name, conn.name, held)

    def _serve_peer(self, peer: Peer, conn: Connection) -> None:
        """A connection another coordinator opened to us: its election and replication
        messages, handled by the cluster."""
        cluster = self.cluster
        assert cluster is not None
        rank = rank_of(peer.id)
        conn.name = f"coordinator {rank}"

        def handle(batch: list[m.Message]) -> bool:
            with self.lock:
                now = time.time()
                for message in batch:
                    log.debug("%s: from %s: %s", self.name, conn.name, message)
                    cluster.on_message(rank, message, now)
            return True

        try:
            read_batches(conn, handle, None)  # peers: the election decides
        finally:
            conn.close()
            with self.lock:
                cluster.peer_gone(rank, conn, time.time())
            conn.join_writer()

    def _handshake(self, conn: Connection) -> Peer | None:
        """The node's Handshake, through the gate (:mod:`vistrit.coordinator.gate`), then
        the cluster's and the core's say. None: refused, and the connection closed."""
        assert self.gate is not None
        hello = self.gate.expect(conn, m.Handshake, ErrorCode.Protocol)
        if hello is None:
            return None
        passed, role = self.gate.admit(conn, hello)
        if not passed:
            return None
        conn.lift_frame_cap()  # it proved who it is (or was admitted as an older node)
        conn.start_writer()  # before the peer is reachable from other threads' outboxes
        with self.lock:
            assert self.core is not None
            refusal = self._cluster_refusal(hello, conn, role)
            if refusal is not None:
                ack, peer = refusal
            else:
                ack, peer = self.core.join(hello, time.time(), role)
            if peer is not None:
                conn.agree(peer.version)
                if peer.kind != NodeType.Coordinator:
                    self._connections[peer.id] = conn
                greeting = []
                if self.cluster is not None and peer.kind != NodeType.Coordinator:
                    greeting = self.cluster.greeting(peer.version)
                conn.post([ack, *greeting])  # first in the queue: nothing can overtake it
        if peer is None:
            reason = getattr(ack, "reason", None) or getattr(ack, "message", "")
            log.info("%s: refused %s: %s", self.name, conn.peer, reason)
            try:
                conn.send(ack)
            except ConnectionClosed:
                pass
            conn.close()
            conn.join_writer()
        return peer

    def _cluster_refusal(
        self, hello: m.Handshake, conn: Connection, role: str | None
    ) -> tuple[m.Message, Peer | None] | None:
        """The cluster's say on a handshake: a peer coordinator that proved a coordinator's
        credential is admitted (or not); a worker or client is redirected while this
        coordinator does not lead. None: the core decides. Under the lock."""
        node = hello.node_info
        if self.cluster is None:
            return None
        version = agree_version(NEWEST_VERSION, hello.protocol_version) or 1
        if node.node_type == NodeType.Coordinator:
            if role != "coordinator":
                why = "a coordinator must prove a coordinator's credential (protocol v4)"
                ack = m.HandshakeAck(
                    accepted=False, node_id=node.id, coordinator_info=self._info, reason=why
                )
                return ack, None
            ack = self.cluster.admit(hello, conn)
            peer = Peer(node.id, node.node_type, version, node.name, role)
            return ack, peer if ack.accepted else None
        redirect = self.cluster.refusal(version)
        if redirect is None:
            return None
        conn.agree(version)
        return redirect, None

    def _apply(self, peer: Peer, batch: list[m.Message]) -> None:
        """Handle messages that arrived together, under one lock, then commit them at once:
        one journal write (and ``fsync``) for the whole batch, before any answer leaves."""
        with self.lock:
            assert self.core is not None
            now = time.time()
            if self.cluster is not None:
                self.cluster.check_pause(now)
                if not self.cluster.is_leader:
                    return  # deposed meanwhile: this connection is being closed
            if self.frame_tap is not None:
                self.frame_tap("in", peer.id, batch)
            outbox: Outbox = []
            for message in batch:
                log.debug("%s: %s", self.name, message)
                try:
                    outbox += self.core.handle(peer, message, now)
                except IllegalTransition as exc:
                    log.debug("%s: ignored: %s", self.name, exc)
            self._commit(offers.without_stale_news(outbox))

    def _commit(self, outbox: Outbox) -> None:
        """Journal what the core decided, then send what may go. Under the lock.

        A journal that cannot be written stops the coordinator: better to acknowledge
        nothing more than to acknowledge what a crash could erase. Records are encoded only
        where they go somewhere (a journal, followers), and never by a follower: its copy
        decides nothing, the leader's records count. With ``--fsync always`` the syncer's
        thread makes them durable, off the lock (:mod:`vistrit.coordinator.syncing`); what
        depends on them waits for it, and on a leader for the followers too.
        """
        assert self.core is not None
        entries = self.core.take_journal()
        leading = self.cluster is None or self.cluster.is_leader
        kept = self.journal is not None or self.cluster is not None
        frames = encode_records(entries) if entries and leading and kept else []
        if frames and not self._write(frames, sync=self.syncer is None):
            return
        if self.cluster is not None:
            ready = self.cluster.commit(frames, outbox, self.core.store, time.time())
            answers = self.cluster.answers  # None: a follower (it syncs as it writes)
            if frames and self.syncer is not None and answers is not None:
                self.syncer.written(answers, answers.replicator.index)
        elif self.syncer is not None:
            ready = self.syncer.commit_alone(len(frames), outbox, self.core.store, time.time())
        else:
            self.post(outbox)
            return
        self.post([sent for outbox in ready for sent in outbox])

    def post(self, outbox: Outbox) -> None:
        """Queue each message on its addressee's connection, keeping order. Under the lock.

        Workers' messages go first: a task's assignment is on its way to a result, while a
        client's acknowledgement is not (its future waits for the outcome). Each connection
        keeps its own order, and every later outbox is posted after this one."""
        grouped: dict[uuid.UUID, list[m.Message]] = defaultdict(list)
        for node_id, message in outbox:
            grouped[node_id].append(message)
        groups = list(grouped.items())
        if len(groups) > 1 and self.core is not None:
            workers = self.core.registry.workers
            groups.sort(key=lambda group: group[0] not in workers)  # stable: False first
        for node_id, messages in groups:
            conn = self._connections.get(node_id)
            if conn is not None:
                conn.post(messages)
                if self.frame_tap is not None:
                    self.frame_tap("out", node_id, messages)

    def _tick(self) -> None:
        """Declare silent workers dead, expire overdue attempts, release due retries, and
        now and then forget tasks past their retention."""
        now = time.time()
        with self.lock:
            if self.core is None:
                return
            held = {w: self.core.registry.leaving_note(w) for w in self.core.silent_workers(now)}
            outbox, dead = self.core.tick(now)
            for worker_id in dead:
                conn = self._connections.get(worker_id)
                who, timeout = conn.name if conn else worker_id, self.policy.heartbeat_timeout
                note = f"sent nothing for {timeout:g} s: declared dead{held.get(worker_id, '')}"
                log.warning("%s: %s %s", self.name, who, note)
                if conn is not None:
                    conn.close()  # its session ends; the core has already let it go
            self._commit(outbox)
            if self.journal is not None:
                self.journal.sync()
            p = self.core.policy  # forgetting costs what it forgets: every tick
            self._forgotten += len(self.core.store.purge(now, p.retention, p.retain_bytes))
            if now - self._last_purge >= defaults.PURGE_INTERVAL:
                if self._forgotten:
                    log.info("%s: forgot %d finished task(s)", self.name, self._forgotten)
                self._last_purge, self._forgotten = now, 0
                if self.journal is not None:
                    records = len(self.core.store.records)
                    self.journal.compact_if_bloated(records, self.core.live_journal)
