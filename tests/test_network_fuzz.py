"""Mutated frames against a live, authenticated coordinator, over real sockets: before the
handshake (as a stranger) and after it (as a worker that proved its credential). The
coordinator must answer or drop each bad connection and keep serving everyone else, and
lose nothing it acknowledged.

The suite sends a few thousand frames; the documented long run sends many more:

    VISTRIT_FUZZ_FRAMES=100000 pytest tests/test_network_fuzz.py
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import socket
import time
import uuid

import pytest
from conftest import payload_of, reframe
from nodes import Cluster, heartbeat, join_raw, wait_until

from vistrit.protocol import ProtocolError, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import first_version
from vistrit.protocol.examples import WORKER, all_examples, v2_examples, v3_examples, v4_examples
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout

FRAMES = [
    encode_frame(message, first_version(message))
    for examples in (all_examples(), v2_examples(), v3_examples(), v4_examples())
    for message in examples.values()
]
TOTAL = int(os.environ.get("VISTRIT_FUZZ_FRAMES", "2000"))
STRANGERS = 0.2  # the share of frames sent without a handshake

pytestmark = pytest.mark.timeout(max(120, TOTAL // 100))


def mutated(rng: random.Random) -> bytes:
    """A real frame with a few bytes changed; half the time the checksum is made right
    again, so that the mutation reaches the payload decoder and the handlers."""
    data = bytearray(rng.choice(FRAMES))
    for _ in range(rng.randint(1, 6)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.5 and len(data) > 14:
        data = bytearray(reframe(payload_of(bytes(data)), data[5]))
    return bytes(data)


def as_a_stranger(address: tuple[str, int], frame: bytes) -> None:
    """One mutated frame on a new connection, without a handshake; then end the stream
    and read until the coordinator closes."""
    with socket.create_connection(address, timeout=5) as sock, contextlib.suppress(OSError):
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass


class Member:
    """A worker that proved its credential, sending a mutated frame and then a heartbeat:
    the HeartbeatAck says the coordinator handled the frame (or it closed the connection,
    and the member joins again)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.conn: Connection | None = None
        self.joins = 0

    def send(self, frame: bytes) -> None:
        if self.conn is None:
            info = dataclasses.replace(WORKER, id=uuid.uuid4())
            conn, answer = join_raw(self.address, info)
            assert isinstance(answer, m.HandshakeAck) and answer.accepted, answer
            self.conn, self.node_id, self.joins = conn, info.id, self.joins + 1
        probe = heartbeat(self.node_id)
        if len(frame) < 14 or int.from_bytes(frame[6:10], "big") != len(frame) - 14:
            # Its length field is off: the coordinator would wait for the rest (or read the
            # probe as part of it). End the stream instead; it sees a frame cut short.
            with contextlib.suppress(ConnectionClosed):
                self.conn.send_raw(frame)
            self.close()
            return
        try:
            self.conn.send_raw(frame + encode_frame(probe))
            deadline = time.monotonic() + 3  # a frame cut short waits for the frame timeout
            while not isinstance(message := self.conn.receive(deadline), m.HeartbeatAck):
                if message is None:
                    raise ConnectionClosed("closed by the coordinator")
        except (ConnectionClosed, ProtocolError, PeerTimeout):
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.mark.parametrize("cluster", [{"frame_timeout": 1.0}], indirect=True)
def test_mutated_frames_before_and_after_authentication(cluster: Cluster) -> None:
    cluster.add_worker(name="steady")
    client = cluster.client()
    kept = [client.submit("uppercase", f"before {n}") for n in range(20)]
    assert [f.result(10) for f in kept] == [f"BEFORE {n}" for n in range(20)]
    rng = random.Random(int(os.environ.get("VISTRIT_FUZZ_SEED", "2026")))
    address = cluster.coordinator.address
    member = Member(address)
    strangers = 0
    started = time.monotonic()
    try:
        for _ in range(TOTAL):
            if rng.random() < STRANGERS:
                as_a_stranger(address, mutated(rng))
                strangers += 1
            else:
                member.send(mutated(rng))
    finally:
        member.close()
    elapsed = time.monotonic() - started
    # Everyone else is still served, and nothing acknowledged was lost.
    assert cluster.coordinator.failure is None and not cluster.coordinator.stopped.is_set()
    assert client.submit("uppercase", "after").result(10) == "AFTER"
    for n, future in enumerate(kept):
        assert client.status(future.task_id).output == f"BEFORE {n}".encode()
    server = cluster.coordinator._server
    wait_until(lambda: len(server._accepted) <= 3, what="the fuzz's connections closed")  # type: ignore[union-attr]
    print(
        f"{TOTAL} mutated frames in {elapsed:.1f} s: {strangers} from strangers, "
        f"{TOTAL - strangers} from a member that joined {member.joins} times"
    )
