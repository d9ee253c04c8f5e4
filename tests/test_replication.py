"""Coordinators of one cluster in this process, on 127.0.0.1: snapshots, redirects, the
followers' journals, and a network partition made by relays that stop forwarding."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import answer_to_a_worker, wait_until

from vistrit.client import VistritClient
from vistrit.coordinator import Coordinator
from vistrit.coordinator import cluster as cluster_module
from vistrit.coordinator.gate import Gate
from vistrit.coordinator.journal import Journal
from vistrit.coordinator.peers import ClusterConfig, parse_peers, post_to_all
from vistrit.credentials import Credentials, default_path
from vistrit.defaults import RELEASE_BYTES
from vistrit.demo import free_port
from vistrit.protocol import NEWEST_VERSION, decode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.gather import SPLICE_AT, Gather
from vistrit.protocol.types import NodeType, SocketAddr, introduce
from vistrit.transport import Connection, FrameServer
from vistrit.worker import Worker

pytestmark = pytest.mark.timeout(60)


class Relay:
    """Forwards TCP connections from its own port to *target*. ``cut()`` stops forwarding
    in both directions (nothing is lost: bytes wait, as packets of a broken link would be
    sent again), ``heal()`` resumes it. A partition that neither side can see."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.open = threading.Event()
        self.open.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, name="relay accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                inbound, _ = self._listener.accept()
            except OSError:
                return
            try:
                outbound = socket.create_connection(self.target, timeout=5)
            except OSError:
                inbound.close()
                continue
            self._sockets += [inbound, outbound]
            for src, dst in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while not self.open.wait(0.1):
                    if self._stopped:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._stopped = True
        self.open.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()


class Nodes:
    """Everything a test started, stopped at the end in order."""

    def __init__(self) -> None:
        self.coordinators: dict[int, Coordinator] = {}
        self.others: list[VistritClient | Worker | Relay] = []

    def coordinator(
        self, rank: int, port: int, peers: dict[int, tuple[str, int]], **options: object
    ) -> Coordinator:
        config = ClusterConfig(rank=rank, peers=peers)
        coordinator = Coordinator(("127.0.0.1", port), name=f"c{rank}", cluster=config, **options)  # type: ignore[arg-type]
        coordinator.start()
        self.coordinators[rank] = coordinator
        return coordinator

    def add(self, node: VistritClient | Worker | Relay) -> VistritClient | Worker | Relay:
        self.others.append(node)
        return node

    def stop(self) -> None:
        for node in reversed(self.others):
            if isinstance(node, VistritClient):
                node.close()
            elif isinstance(node, Worker):
                node.stop()
        for coordinator in self.coordinators.values():
            coordinator.stop()
        for node in self.others:
            if isinstance(node, Relay):
                node.close()


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    started = Nodes()
    yield started
    started.stop()


def leader(nodes: Nodes) -> int | None:
    leading = [r for r, c in nodes.coordinators.items() if c.cluster and c.cluster.is_leader]
    return leading[0] if len(leading) == 1 else None


def waits_for(coordinator: Coordinator, count: int) -> bool:
    """The leader waits for *count* followers: their links are up and they hold everything."""
    replicator = coordinator.cluster.replicator if coordinator.cluster else None
    if replicator is None:
        return False
    return sum(f.required for f in replicator.followers.values()) == count


def handshake(port: int, version: int) -> m.Message | None:
    return answer_to_a_worker(("127.0.0.1", port), version)


def address(port: int) -> tuple[str, int]:
    return ("127.0.0.1", port)


def test_peers_are_parsed_and_bad_configurations_refused() -> None:
    assert parse_peers("1@a:7001, 2@b:7002,3@c:7003", own=2) == {1: ("a", 7001), 3: ("c", 7003)}
    for bad, error in [
        ("x@a:1", "ID@HOST:PORT"),
        ("0@a:1", "positive"),
        ("a:1", "ID@HOST:PORT"),
        ("1@a:1,1@b:2", "given twice"),
        ("1@a:notaport", "port"),
    ]:
        with pytest.raises(ValueError, match=error):
            parse_peers(bad)
    with pytest.raises(ValueError, match="also one of the peers"):
        ClusterConfig(rank=1, peers={1: ("a", 1)})
    with pytest.raises(ValueError, match="at least one peer"):
        ClusterConfig(rank=1, peers={})
    with pytest.raises(ValueError, match="positive"):
        ClusterConfig(rank=0, peers={1: ("a", 1)})
    with pytest.raises(ValueError, match="shorter than the leader timeout"):
        ClusterConfig(rank=1, peers={2: ("a", 1)}, leader_heartbeat=1, leader_timeout=1)


def test_a_joining_follower_gets_a_snapshot_in_parts_and_journals_it(
    nodes: Nodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cluster_module, "SNAPSHOT_PART_BYTES", 2000)
    caplog.set_level(logging.INFO, logger="vistrit.coordinator.cluster")
    ports = {1: free_port(), 2: free_port()}
    two = nodes.coordinator(2, ports[2], {1: address(ports[1])}, data_dir=tmp_path / "2")
    wait_until(lambda: two.cluster is not None and two.cluster.is_leader, what="2 to lead alone")
    client = nodes.add(VistritClient(f"127.0.0.1:{ports[2]}"))
    assert isinstance(client, VistritClient)
    futures = [client.submit("uppercase", f"task {n}" * 20) for n in range(30)]
    client.status(futures[-1].task_id)  # every submission is acknowledged
    one = nodes.coordinator(1, ports[1], {2: address(ports[2])}, data_dir=tmp_path / "1")
    wait_until(lambda: one.core is not None and len(one.core.store.records) == 30, what="copy")
    parts = [r.getMessage() for r in caplog.records if "snapshot of 30 record(s)" in r.getMessage()]
    assert parts and not parts[0].endswith("in 1 part(s)")
    # Submissions from now on reach the follower one by one, and its own journal.
    more = client.submit("uppercase", "one more")
    client.status(more.task_id)
    assert one.core is not None and one.core.store.get(more.task_id) is not None
    journal = Journal(tmp_path / "1")
    replayed = journal.replay()
    journal.close()
    assert {e.task.id for e in replayed if isinstance(e, m.TaskSubmit)} == {
        f.task_id for f in [*futures, more]
    }


@pytest.mark.parametrize("size", [RELEASE_BYTES, 4 * SPLICE_AT])  # (records spliced, too)
def test_a_follower_lets_go_of_a_large_payload_when_the_leader_does(
    nodes: Nodes, size: int
) -> None:
    from vistrit.logic.store import RELEASED

    ports = {1: free_port(), 2: free_port()}
    peers = {1: address(ports[1]), 2: address(ports[2])}
    two = nodes.coordinator(2, ports[2], {1: peers[1]})
    one = nodes.coordinator(1, ports[1], {2: peers[2]})
    wait_until(lambda: leader(nodes) == 2 and waits_for(two, 1), what="2 to lead, 1 to follow")
    nodes.add(Worker(peers[2], heartbeat_interval=0.2))
    for node in nodes.others:
        if isinstance(node, Worker):
            node.start()
    client = nodes.add(VistritClient(f"127.0.0.1:{ports[2]}"))
    assert isinstance(client, VistritClient)
    data = bytes(range(256)) * (size // 256)
    future = client.submit("echo", data)
    assert future.result(20) == data

    def let_go(coordinator: Coordinator) -> bool:
        record = coordinator.core.store.get(future.task_id) if coordinator.core else None
        return record is not None and record.result is not None and record.result.error == RELEASED

    wait_until(lambda: let_go(two) and let_go(one), what="leader and follower to let it go")
    assert one.core is not None and one.core.store.retained_total == 0


def test_followers_redirect_v3_peers_and_refuse_older_ones_with_unavailable(nodes: Nodes) -> None:
    ports = {1: free_port(), 2: free_port()}
    older = {"allow_unauthenticated": True}  # so that v3 and v1 peers are answered at all
    nodes.coordinator(1, ports[1], {2: address(ports[2])}, **older)
    nodes.coordinator(2, ports[2], {1: address(ports[1])}, **older)
    wait_until(lambda: leader(nodes) == 2, what="2 to lead")
    wait_until(lambda: isinstance(handshake(ports[1], 3), m.Redirect), what="a redirect")
    authenticated = handshake(ports[1], NEWEST_VERSION)  # redirected after proving itself
    assert isinstance(authenticated, m.Redirect) and authenticated.leader_id == uuid.UUID(int=2)
    redirect = handshake(ports[1], 3)
    assert isinstance(redirect, m.Redirect)
    assert redirect.leader_id == uuid.UUID(int=2)
    assert redirect.leader_address == SocketAddr("127.0.0.1", ports[2])
    assert "the leader is coordinator 2" in redirect.reason
    error = handshake(ports[1], 1)
    assert isinstance(error, m.Error) and error.code == ErrorCode.Unavailable
    assert error.entity_id == f"127.0.0.1:{ports[2]}" and error.details == f"term {redirect.term}"
    ack = handshake(ports[2], 3)
    assert isinstance(ack, m.HandshakeAck) and ack.accepted


def test_a_submission_too_large_to_replicate_is_refused(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vistrit.client import TaskRejected, TaskTooLarge
    from vistrit.protocol.frame import MAX_PAYLOAD

    ports = {1: free_port(), 2: free_port()}
    nodes.coordinator(1, ports[1], {2: address(ports[2])})
    nodes.coordinator(2, ports[2], {1: address(ports[1])})
    wait_until(lambda: leader(nodes) == 2, what="2 to lead")
    client = nodes.add(VistritClient(f"127.0.0.1:{ports[2]}"))
    assert isinstance(client, VistritClient)
    with pytest.raises(TaskTooLarge, match="one frame carries at most 16,711,680"):
        client.submit("echo", b"x" * (MAX_PAYLOAD - 800))  # the SDK refuses it first
    monkeypatch.setattr("vistrit.submission.ASSIGN_BYTES", MAX_PAYLOAD)  # a client that won't
    huge = client.submit("echo", b"x" * (MAX_PAYLOAD - 800))
    with pytest.raises(TaskRejected, match="too large to replicate"):
        huge.result(20)
    fits = client.submit("echo", b"x" * (MAX_PAYLOAD - 4096))
    assert client.status(fits.task_id).state == "Pending"  # accepted (no worker to run it)


def test_a_follower_missing_records_is_sent_a_new_snapshot(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vistrit.coordinator.cluster")
    ports = {1: free_port(), 2: free_port()}
    one = nodes.coordinator(1, ports[1], {2: address(ports[2])})
    two = nodes.coordinator(2, ports[2], {1: address(ports[1])})
    wait_until(lambda: leader(nodes) == 2, what="2 to lead")
    client = nodes.add(VistritClient(f"127.0.0.1:{ports[2]}"))
    assert isinstance(client, VistritClient)
    first = client.submit("uppercase", "a")
    client.status(first.task_id)
    assert one.cluster is not None and two.core is not None
    with two.lock:
        one.cluster.copy.applied -= 1  # as if a record had been lost on the way
    wait_until(lambda: any("missing records" in r.getMessage() for r in caplog.records))
    second = client.submit("uppercase", "b")
    client.status(second.task_id)
    wait_until(lambda: one.core is not None and one.core.store.get(second.task_id) is not None)


def behind_relays(
    nodes: Nodes, cut_off: int
) -> tuple[dict[int, int], dict[int, Relay], dict[int, tuple[str, int]], VistritClient]:
    """Three coordinators whose links to coordinator *cut_off* (both ways) go through
    relays, and the others' directly: their ports, the relay in front of each, and each
    one's direct address, and a client of 3's. Returns once 3 leads, a worker of its own
    has run the client's task "before", and 3 waits for both followers."""
    ports = {rank: free_port() for rank in (1, 2, 3)}
    to = {rank: Relay(address(port)) for rank, port in ports.items()}
    for relay in to.values():
        nodes.add(relay)
    direct = {rank: address(port) for rank, port in ports.items()}
    for rank, port in ports.items():
        peers = {
            other: to[other].address if cut_off in (rank, other) else direct[other]
            for other in ports
            if other != rank
        }
        nodes.coordinator(rank, port, peers)
    wait_until(lambda: leader(nodes) == 3, what="3 to lead")
    worker = nodes.add(Worker(direct[3], heartbeat_interval=0.2, name="worker-of-3"))
    assert isinstance(worker, Worker)
    worker.start()
    client = nodes.add(VistritClient(f"127.0.0.1:{ports[3]}", request_timeout=10))
    assert isinstance(client, VistritClient)
    assert client.submit("uppercase", "before").result(10) == "BEFORE"
    wait_until(lambda: waits_for(nodes.coordinators[3], 2), what="3 to wait for both followers")
    return ports, to, direct, client


def test_a_partition_makes_two_leaders_and_the_terms_settle_it_when_it_heals(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    """The split-brain demonstration of the limits page. Coordinator 3 is cut off from 1
    and 2; its own client and worker can still reach it. 1 and 2 elect 2; 3 keeps leading
    its side alone once it stops waiting for its followers. Two leaders, two terms. When
    the partition heals, 3 sees the newer term, steps down and takes 2's copy; it keeps
    the task it finished alone meanwhile (the new copy lacks it) and, handed the lead
    back, remembers it again: both sides' finished tasks are known. (Its client still
    holds its unfinished tasks, and resubmits them.)"""
    caplog.set_level(logging.INFO, logger="vistrit")
    ports, to, direct, left = behind_relays(nodes, cut_off=3)
    three = nodes.coordinators[3]

    for relay in to.values():
        relay.cut()
    wait_until(lambda: nodes.coordinators[2].cluster.is_leader, what="2 to lead its side")  # type: ignore[union-attr]
    assert three.cluster is not None and three.cluster.is_leader  # it cannot know
    during = left.submit("uppercase", "during")  # acknowledged by 3 alone, after a wait
    assert during.result(10) == "DURING"
    assert any("did not acknowledge within" in r.getMessage() for r in caplog.records)
    right = nodes.add(
        VistritClient(f"127.0.0.1:{ports[1]},127.0.0.1:{ports[2]}", request_timeout=10)
    )
    assert isinstance(right, VistritClient)
    majority = nodes.add(
        Worker([direct[1], direct[2]], heartbeat_interval=0.2, name="majority-worker")
    )
    assert isinstance(majority, Worker)
    majority.start()
    elsewhere = right.submit("uppercase", "elsewhere")
    assert elsewhere.result(10) == "ELSEWHERE"
    two = nodes.coordinators[2].cluster
    assert two is not None and two.election is not None and three.cluster.election is not None
    assert two.election.term > three.cluster.election.term  # two leaders, two terms

    for relay in to.values():
        relay.heal()
    stepped_down = "c3: no longer the leader"
    wait_until(
        lambda: any(stepped_down in r.getMessage() for r in caplog.records), what="3 to step down"
    )
    wait_until(lambda: leader(nodes) == 3 and waits_for(three, 2), what="3 to lead again")
    for task, output in ((during, b"DURING"), (elsewhere, b"ELSEWHERE")):
        status = right.status(task.task_id)
        assert status.state == "Completed" and status.output == output
    assert any("c3: 1 finished task(s) remembered again" in r.getMessage() for r in caplog.records)
    assert right.submit("uppercase", "after").result(10) == "AFTER"


def test_a_coordinator_cut_off_alone_does_not_take_what_the_other_side_finished(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    """The partition the other way round. Coordinator 1, the lowest-ranked, is cut off
    alone; 3 goes on leading 2, its client and its worker, and a task finishes there,
    acknowledged with 2's copy. Alone, 1 hears nobody above it and elects itself, in a
    newer term. Then 2 stops, and the partition heals: 1's newer term deposes 3, which
    follows 1 and takes 1's copy, which lacks the task. 3 kept the finished tasks its
    copy had and the new one lacks, and remembers them again when it leads again (at
    once: it outranks 1, and takes over): the task is neither lost nor run again."""
    caplog.set_level(logging.INFO, logger="vistrit")
    _, to, _, client = behind_relays(nodes, cut_off=1)
    two, three = nodes.coordinators[2], nodes.coordinators[3]

    for relay in to.values():
        relay.cut()
    one = nodes.coordinators[1].cluster
    assert one is not None
    wait_until(lambda: one.is_leader, what="1 to lead alone")
    assert three.cluster is not None and three.cluster.is_leader  # it cannot know
    wait_until(lambda: waits_for(three, 1), what="3 to stop waiting for 1")
    during = client.submit("uppercase", "during")  # acknowledged with 2's copy
    assert during.result(10) == "DURING"
    two.stop()  # the copy that has it besides 3's is gone

    for relay in to.values():
        relay.heal()
    wait_until(
        lambda: any("c3: no longer the leader" in r.getMessage() for r in caplog.records),
        what="3 to step down",
    )
    wait_until(lambda: leader(nodes) == 3 and waits_for(three, 1), what="3 to lead again")
    status = client.status(during.task_id)  # remembered again as it finished: not run again
    assert status.state == "Completed" and status.output == b"DURING"
    assert any("c3: kept 1 task(s) finished here" in r.getMessage() for r in caplog.records)
    assert any("c3: 1 finished task(s) remembered again" in r.getMessage() for r in caplog.records)
    assert client.submit("uppercase", "after").result(10) == "AFTER"


class Announcer:
    """A stand-in coordinator that accepts every handshake and then announces the next of
    *terms* as its term: the first connection gets terms[0], the second terms[1], ..."""

    def __init__(self, terms: list[int]) -> None:
        self.terms = terms
        self.connections = 0
        self.server = FrameServer(("127.0.0.1", 0), self._serve)

    def _serve(self, conn: Connection) -> None:
        hello = conn.receive(time.monotonic() + 5)
        assert isinstance(hello, m.Handshake)
        me = introduce(uuid.UUID(int=1), NodeType.Coordinator, SocketAddr(*conn.local), "fake", 0)
        gate = Gate(Credentials.load(default_path()), me, timeout=5, name="fake")
        if not gate.admit(conn, hello)[0]:
            return
        term = self.terms[min(self.connections, len(self.terms) - 1)]
        self.connections += 1
        conn.send(
            m.HandshakeAck(
                accepted=True, node_id=hello.node_info.id, coordinator_info=None, reason=None
            ),
            m.LeaderAnnounce(
                term=term, leader_id=uuid.UUID(int=1), leader_address=SocketAddr(*conn.local)
            ),
        )
        while (message := conn.receive()) is not None:
            if isinstance(message, m.Heartbeat):
                ack = m.HeartbeatAck(
                    coordinator_id=uuid.UUID(int=1), echo_timestamp=0, coordinator_timestamp=0
                )
                conn.send(ack)
            if term == self.terms[0] and self.connections == 1:
                conn.close()  # the first leader goes away after the first message
                return

    def __enter__(self) -> Announcer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.mark.parametrize("node", ["client", "worker"])
def test_clients_and_workers_refuse_a_leader_of_an_older_term(
    node: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Term 5 is seen; a coordinator then announcing term 3 (a deposed leader) is left for
    another; one announcing term 6 is kept."""
    caplog.set_level(logging.WARNING)
    with Announcer([5, 3, 6]) as fake:
        host, port = fake.server.address
        if node == "client":
            started: VistritClient | Worker = VistritClient(f"{host}:{port}")
            finder = started.session.finder
        else:
            started = Worker((host, port), heartbeat_interval=0.1)
            started.start()
            finder = started.session.finder
        try:
            wait_until(lambda: fake.connections >= 3, what="a third connection")
            wait_until(lambda: finder.term == 6, what="term 6 kept")
            assert any(
                "leads term 3, older than term 5: it was deposed" in r.getMessage()
                for r in caplog.records
            )
        finally:
            if isinstance(started, VistritClient):
                started.close()
            else:
                started.stop()


class _Link:
    """What post_to_all uses of a PeerLink: its connection's version, and post."""

    def __init__(self, version: int | None) -> None:
        self.conn = None if version is None else type("Conn", (), {"version": version})()
        self.posted: list[object] = []

    def post(self, messages: list[object]) -> bool:
        self.posted += messages
        return True


def test_a_replicate_is_encoded_once_for_every_follower_of_a_version() -> None:
    large = bytes(range(256)) * (SPLICE_AT // 256)  # a record of a large task
    records = (bytes(range(200)),) * 9 + (large,)
    message = m.Replicate(term=3, leader_id=uuid.uuid4(), index=7, records=records)
    links = [_Link(4), _Link(4), _Link(None), _Link(3)]
    post_to_all(links, message)  # type: ignore[arg-type]
    (first,), (second,), down, (older,) = (link.posted for link in links)
    assert first is second and isinstance(first, Gather)  # one encoding, sent twice
    assert [data for _, data in first.spliced] == [large]  # and the large record not copied
    assert first.spliced[0][1] is large
    assert down == []  # a link that is down is passed over
    decoded = decode_frame(b"".join(first.pieces()))
    decoded_older = decode_frame(b"".join(older.pieces()))
    assert decoded.version == 4 and decoded_older.version == 3
    assert decoded.message == message == decoded_older.message
