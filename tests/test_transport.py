"""The transport over real TCP on 127.0.0.1, and peers that misbehave.

A misbehaving peer is answered with an Error frame where possible and disconnected after
its deadline; meanwhile every other connection is served as usual.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import vector
from nodes import Cluster, wait_until

from vistrit.addresses import parse_address
from vistrit.protocol import FrameDecoder, decode_frame, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.examples import all_examples
from vistrit.transport import (
    Connection,
    ConnectionClosed,
    FrameServer,
    PeerTimeout,
    connect,
)
from vistrit.transport.waits import LONGEST_BOUND, SocketWaits, timeval

pytestmark = pytest.mark.timeout(60)
BEAT = all_examples()["Heartbeat"]


@pytest.fixture
def echo_server() -> Iterator[FrameServer]:
    """A server that sends back every message it receives."""

    def echo(conn: Connection) -> None:
        while (message := conn.receive()) is not None:
            conn.send(message)

    server = FrameServer(("127.0.0.1", 0), echo)
    server.start()
    yield server
    server.stop()


_OPEN: list[socket.socket] = []


def raw_socket(address: tuple[str, int]) -> socket.socket:
    """A plain socket, closed when the test ends (see the autouse fixture below)."""
    sock = socket.create_connection(address, timeout=10)
    _OPEN.append(sock)
    return sock


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def read_error(sock: socket.socket) -> m.Error:
    """Read until the server closes; the bytes must be exactly one Error frame."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    message = decode_frame(data).message
    assert isinstance(message, m.Error)
    return message


def test_parse_address() -> None:
    assert parse_address("localhost:7878") == ("localhost", 7878)
    assert parse_address("10.0.0.1") == ("10.0.0.1", 7878)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ["", "host:port", "host:99999", ":7878"]:
        with pytest.raises(ValueError):
            parse_address(bad)


def test_many_frames_in_one_write_come_out_one_by_one(echo_server: FrameServer) -> None:
    conn = connect(echo_server.address)
    conn.send(*([BEAT] * 200))  # one sendall
    received = [conn.receive(time.monotonic() + 10) for _ in range(200)]
    assert received == [BEAT] * 200
    conn.close()


def test_a_frame_trickling_in_byte_by_byte(echo_server: FrameServer) -> None:
    sock = raw_socket(echo_server.address)
    for byte in encode_frame(BEAT):
        sock.sendall(bytes([byte]))
    decoder = FrameDecoder()
    while (frame := decoder.next_message()) is None:
        decoder.feed(sock.recv(4096))
    assert frame == BEAT
    sock.close()


def test_concurrent_senders_never_interleave_bytes(echo_server: FrameServer) -> None:
    conn = connect(echo_server.address)
    big = all_examples()["TaskSubmit"]
    threads = [
        threading.Thread(target=lambda: [conn.send(big, BEAT) for _ in range(50)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = [conn.receive(time.monotonic() + 10) for _ in range(400)]
    assert received.count(big) == 200 and received.count(BEAT) == 200
    conn.close()


def test_close_wakes_a_blocked_reader(echo_server: FrameServer) -> None:
    conn = connect(echo_server.address)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(conn.receive()))
    reader.start()
    time.sleep(0.05)  # not a synchronisation: the reader may or may not be in poll yet
    conn.close()
    reader.join(5)
    assert not reader.is_alive() and result == [None]
    with pytest.raises(ConnectionClosed):
        conn.send(BEAT)


def test_receive_deadline(echo_server: FrameServer) -> None:
    conn = connect(echo_server.address)
    started = time.monotonic()
    with pytest.raises(PeerTimeout, match="did not send a message"):
        conn.receive(started + 0.2)
    assert 0.15 < time.monotonic() - started < 5
    conn.close()


def sleeping_in(thread_id: int) -> str | None:
    """Where a thread of this process sleeps in the kernel (Linux's ``wchan``), or None
    while it runs or waits for a lock (the interpreter's, say)."""
    with open(f"/proc/self/task/{thread_id}/stat") as stat:
        state = stat.read().rsplit(")", 1)[1].split()[0]
    with open(f"/proc/self/task/{thread_id}/wchan") as wchan:
        where = wchan.read()
    return where if state == "S" and where not in ("", "0") and "futex" not in where else None


@pytest.mark.parametrize("wait", [None, 50.0], ids=["a session's reader", "a coordinator's"])
def test_a_reader_waits_in_recv_itself_and_close_wakes_it(
    echo_server: FrameServer, wait: float | None
) -> None:
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/wchan"):
        pytest.skip("needs Linux's /proc/<pid>/task/<tid>/wchan")
    conn = connect(echo_server.address)
    result: list[object] = []
    ids: list[int] = []

    def read() -> None:
        ids.append(threading.get_native_id())
        result.append(conn.receive(None if wait is None else time.monotonic() + wait))

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: ids and sleeping_in(ids[0]), what="the reader to wait")
    assert "poll" not in (sleeping_in(ids[0]) or "")  # no poll before the recv
    conn.close()
    reader.join(5)
    assert not reader.is_alive() and result == [None]


def test_a_deadline_of_seconds_is_kept_by_the_kernel_then_a_poll(echo_server: FrameServer) -> None:
    conn = connect(echo_server.address)
    started = time.monotonic()
    with pytest.raises(PeerTimeout, match="did not send a message"):
        conn.receive(started + 1.5)  # a recv bounded to 1 s by the kernel, then a poll
    assert 1.5 <= time.monotonic() - started < 5
    conn.send(BEAT)  # the connection is still good
    assert conn.receive(time.monotonic() + 5) == BEAT
    conn.close()


def test_the_kernel_bound_is_set_only_when_its_whole_seconds_change() -> None:
    mine, theirs = socket.socketpair()
    settings: list[int] = []

    class Counted:
        fileno = mine.fileno

        def setsockopt(self, level: int, option: int, value: bytes) -> None:
            settings.append(struct.unpack("@ll", value)[0])
            mine.setsockopt(level, option, value)

    waits = SocketWaits(Counted())  # type: ignore[arg-type]
    for wait in (59.9, 59.5, 59.0, None, None, 2.5, float("inf")):
        assert waits.before_recv(wait)
    assert settings == [59, 0, 2, LONGEST_BOUND]
    assert waits.before_recv(2.5)
    raw = mine.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, len(timeval(0)))
    assert struct.unpack("@ll", raw) == (2, 0)
    started = time.monotonic()
    assert not waits.before_recv(0.2)  # under a second: a poll, and nothing came
    assert time.monotonic() - started >= 0.19
    theirs.send(b"x")
    assert waits.before_recv(0.5)
    mine.close()
    theirs.close()


def test_the_server_joins_every_thread_on_stop() -> None:
    before = threading.active_count()
    server = FrameServer(("127.0.0.1", 0), lambda conn: conn.receive())
    server.start()
    clients = [connect(server.address) for _ in range(5)]
    wait_until(lambda: threading.active_count() >= before + 6)
    server.stop()
    assert threading.active_count() == before
    for client in clients:
        assert client.receive(time.monotonic() + 5) is None  # the server closed them
        client.close()


# -- hostile peers, against a real coordinator ----------------------------------------------

# The reference implementation cannot authenticate: tests that play it need this.
REFERENCE_PEERS = {"allow_unauthenticated": True}
SHORT = {"handshake_timeout": 0.3, "frame_timeout": 0.3, **REFERENCE_PEERS}


def served_meanwhile(cluster: Cluster) -> None:
    assert cluster.clients[0].submit("uppercase", "still here").result(10) == "STILL HERE"


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_garbage_gets_an_error_and_the_connection_closed(cluster: Cluster) -> None:
    cluster.add_worker()
    cluster.client()
    sock = raw_socket(cluster.coordinator.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    error = read_error(sock)
    assert error.code == ErrorCode.Protocol and "bad magic 47 45 54 20" in error.message
    served_meanwhile(cluster)


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_a_peer_that_never_handshakes_is_dropped(cluster: Cluster) -> None:
    cluster.add_worker()
    cluster.client()
    sock = raw_socket(cluster.coordinator.address)
    error = read_error(sock)
    assert "no Handshake within 0.3 s" in error.message
    served_meanwhile(cluster)


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_a_first_message_that_is_not_a_handshake_is_refused(cluster: Cluster) -> None:
    sock = raw_socket(cluster.coordinator.address)
    sock.sendall(encode_frame(BEAT))
    assert "expected Handshake, got Heartbeat" in read_error(sock).message


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_a_peer_stalling_mid_frame_is_dropped(cluster: Cluster) -> None:
    cluster.add_worker()
    cluster.client()
    sock = raw_socket(cluster.coordinator.address)
    sock.sendall(vector("Handshake"))
    decoder = FrameDecoder()
    while (ack := decoder.next_message()) is None:
        decoder.feed(sock.recv(4096))
    assert isinstance(ack, m.HandshakeAck) and ack.accepted
    sock.sendall(encode_frame(BEAT)[:20])  # and then nothing
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    decoder.feed(data)
    error = decoder.next_message()
    assert isinstance(error, m.Error) and "did not finish its frame" in error.message
    served_meanwhile(cluster)


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_a_bad_checksum_is_answered_as_the_reference_does(cluster: Cluster) -> None:
    sock = raw_socket(cluster.coordinator.address)
    hello = vector("Handshake")
    sock.sendall(hello[:-1] + bytes([hello[-1] ^ 0xFF]))
    error = read_error(sock)
    assert error.code == ErrorCode.Protocol
    assert error.message.startswith("Checksum mismatch: expected 0x")


@pytest.mark.parametrize("cluster", [SHORT], indirect=True)
def test_an_oversized_length_is_refused_from_the_header(cluster: Cluster) -> None:
    sock = raw_socket(cluster.coordinator.address)
    sock.sendall(b"VIST\x01\x01\xff\xff\xff\xff")  # 4 GiB announced, nothing sent
    assert "over the 65536-byte cap" in read_error(sock).message  # before the handshake


def test_before_the_handshake_a_frame_may_not_be_large(cluster: Cluster) -> None:
    sock = raw_socket(cluster.coordinator.address)
    sock.sendall(b"VIST\x01\x01\x00\x01\x00\x01" + bytes(100))  # 65,537 bytes announced
    error = read_error(sock)
    assert error.code == ErrorCode.Protocol and "over the 65536-byte cap" in error.message


def test_a_connection_that_says_nothing_is_closed_after_the_idle_timeout() -> None:
    from nodes import join_raw

    from vistrit.coordinator import Coordinator
    from vistrit.defaults import Limits
    from vistrit.protocol.examples import WORKER

    with Coordinator(("127.0.0.1", 0), limits=Limits(idle_timeout=0.3)) as coordinator:
        conn, answer = join_raw(coordinator.address, WORKER)
        try:
            assert isinstance(answer, m.HandshakeAck) and answer.accepted
            error = conn.receive(time.monotonic() + 10)  # it says nothing, not even a heartbeat
            assert isinstance(error, m.Error) and "did not send a message in time" in error.message
            assert conn.receive(time.monotonic() + 5) is None
        finally:
            conn.close()


def test_past_the_connection_limit_a_peer_is_told_and_closed() -> None:
    from vistrit.coordinator import Coordinator
    from vistrit.defaults import Limits

    with Coordinator(("127.0.0.1", 0), limits=Limits(max_connections=2)) as coordinator:
        first, second = (raw_socket(coordinator.address) for _ in range(2))
        wait_until(lambda: len(coordinator._server._accepted) == 2, what="two connections")  # type: ignore[union-attr]
        third = raw_socket(coordinator.address)
        error = read_error(third)
        assert error.code == ErrorCode.Unavailable and "too many connections (2)" in error.message
        first.close()
        wait_until(lambda: len(coordinator._server._accepted) < 2, what="a free place")  # type: ignore[union-attr]
        fourth = raw_socket(coordinator.address)
        fourth.sendall(vector("Handshake"))  # served again (and refused: it cannot authenticate)
        assert decode_frame(fourth.recv(65536)).message.WIRE_NAME == "HandshakeAck"
        second.close()


@pytest.mark.parametrize("cluster", [REFERENCE_PEERS], indirect=True)
def test_a_raw_v1_peer_can_use_the_coordinator_like_the_reference_cli(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    conn = connect(cluster.coordinator.address)
    conn.send(m.Handshake(node_info=all_examples()["Handshake"].node_info, protocol_version=1))  # type: ignore[attr-defined]
    ack = conn.receive(time.monotonic() + 10)
    assert isinstance(ack, m.HandshakeAck) and ack.accepted
    submit = all_examples()["TaskSubmit"]
    task = submit.task  # type: ignore[attr-defined]
    conn.send(submit)
    reply = conn.receive(time.monotonic() + 10)
    assert isinstance(reply, m.TaskSubmitAck) and reply.accepted and reply.task_id == task.id
    assert client.wait(task.id, timeout=10).output == b"6"  # a real worker ran it
    conn.send(m.TaskQuery(task_id=task.id))
    answer = conn.receive(time.monotonic() + 10)
    assert isinstance(answer, m.TaskQueryResponse) and answer.result is not None
    assert [w.name for w in client.workers()] != ["worker-a"]  # never listed
    conn.send(m.WorkerListRequest(request_id=uuid.uuid4()))
    listing = conn.receive(time.monotonic() + 10)
    assert isinstance(listing, m.WorkerListResponse) and "worker-a" not in [
        w.name for w in listing.workers
    ]
    conn.close()


def test_post_never_blocks_on_a_peer_that_does_not_read() -> None:
    accepted: list[Connection] = []
    gate = threading.Event()

    def hold(conn: Connection) -> None:  # accepts, then never reads
        accepted.append(conn)
        gate.wait(30)

    server = FrameServer(("127.0.0.1", 0), hold)
    server.start()
    conn = connect(server.address)
    conn.start_writer()
    try:
        chunk = all_examples()["TaskSubmit"]
        started = time.monotonic()
        for _ in range(20_000):  # far more than the socket buffers hold
            conn.post([chunk])
        assert time.monotonic() - started < 5  # queued, not blocked
    finally:
        gate.set()
        conn.close()
        conn.join_writer()
        server.stop()


def test_a_burst_is_read_as_one_batch_and_a_bad_frame_ends_it(echo_server: FrameServer) -> None:
    from vistrit.protocol.errors import BadMagic

    received: list[list[object]] = []
    errors: list[Exception] = []
    done = threading.Event()

    def batches(conn: Connection) -> None:
        try:
            while (first := conn.receive()) is not None:
                received.append([first, *conn.buffered_messages()])
        except Exception as exc:  # the test checks which error came, and when
            errors.append(exc)
        finally:
            done.set()

    server = FrameServer(("127.0.0.1", 0), batches)
    server.start()
    try:
        sock = raw_socket(server.address)
        sock.sendall(encode_frame(BEAT) * 3 + b"JUNK" + encode_frame(BEAT))
        assert done.wait(10)
        assert sum(len(batch) for batch in received) == 3  # the good ones, all handled
        assert len(errors) == 1 and isinstance(errors[0], BadMagic)
    finally:
        server.stop()


def test_a_connection_that_arrives_while_the_server_stops_is_closed_not_waited_for() -> None:
    """stop() closes the connections it knows of, then joins their threads; a connection
    whose thread started just before, and is tracked only after stop() looked, must not
    keep stop() waiting for ever."""
    server = FrameServer(("127.0.0.1", 0), lambda conn: conn.receive())
    server._stopping.set()  # what stop() does before it looks at the connections
    outside = raw_socket(server.address)  # bound and listening: the kernel accepts it
    inside, _ = server.socket.accept()
    try:
        late = Connection(inside, name="late")
        server.track(late, add=True)
        assert late.closed  # its handler's receive() returns at once
        assert outside.recv(1) == b""  # and the peer sees the close
    finally:
        server.server_close()
