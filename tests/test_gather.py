"""Large byte strings sent from where they lie: spliced into a Gather, not copied into the
frame, and the bytes on the wire the same as ever (vistrit.protocol.gather,
vistrit.transport.sending).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vistrit.protocol import FrameDecoder, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ChecksumMismatch, EncodeError
from vistrit.protocol.examples import RESULT, all_examples, word_count_task
from vistrit.protocol.frame import MAX_PAYLOAD, encode_frame_gathered, encode_frame_into
from vistrit.protocol.gather import SPLICE_AT, Gather
from vistrit.protocol.types import TaskPayload
from vistrit.transport import Connection
from vistrit.transport.sending import MAX_PIECES, advance

pytestmark = pytest.mark.timeout(60)


def assign(data: bytes) -> m.TaskAssign:
    return m.TaskAssign(task=word_count_task(data))


def result(data: bytes, error: str | None = None) -> m.TaskResultMessage:
    return m.TaskResultMessage(result=dataclasses.replace(RESULT, data=data, error=error))


def whole(gather: Gather) -> bytes:
    """The frames as one ``bytes``: its pieces, joined."""
    return b"".join(gather.pieces())


def spliced_objects(gather: Gather) -> list[bytes]:
    return [data for _, data in gather.spliced]


# -- the frame's bytes ---------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(
        st.sampled_from([0, 7, SPLICE_AT - 1, SPLICE_AT, SPLICE_AT + 1, 3 * SPLICE_AT]),
        min_size=1,
        max_size=4,
    ),
    kinds=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_frames_gathered_are_the_bytes_encode_frame_makes(
    sizes: list[int], kinds: list[bool]
) -> None:
    gather = Gather()
    expected = b""
    large: list[bytes] = []
    for n, (size, is_assign) in enumerate(zip(sizes, kinds)):
        data = bytes([n]) * size
        message = assign(data) if is_assign else result(data)
        encode_frame_into(gather, message, 4)
        expected += encode_frame(message, 4)
        if size >= SPLICE_AT:
            large.append(data)
    assert whole(gather) == expected
    # Each large field is the very object given, not a copy; nothing else is spliced.
    assert [id(data) for data in spliced_objects(gather)] == [id(data) for data in large]
    assert len(gather) == len(expected) - sum(len(data) for data in large)


def test_a_bytearray_or_a_small_field_is_copied_not_spliced() -> None:
    gather = Gather()
    encode_frame_into(gather, assign(b"x" * (SPLICE_AT - 1)), 4)
    mutable = bytearray(b"y" * SPLICE_AT)  # its owner may change it before it is sent
    task = word_count_task()
    payload = TaskPayload.Data(function="echo", data=mutable)  # type: ignore[arg-type]
    encode_frame_into(gather, m.TaskAssign(task=dataclasses.replace(task, payload=payload)), 4)
    assert gather.spliced == ()
    assert len(gather.pieces()) == 1


def test_a_frame_that_cannot_be_encoded_leaves_the_gather_as_it_was() -> None:
    gather = Gather()
    first = assign(b"a" * SPLICE_AT)
    encode_frame_into(gather, first, 4)
    before = (bytes(gather), list(gather.spliced))
    # The large data is spliced before the error text, which cannot be UTF-8, fails.
    with pytest.raises(EncodeError):
        encode_frame_into(gather, result(b"b" * SPLICE_AT, error="\ud800"), 4)
    assert (bytes(gather), list(gather.spliced)) == before
    assert whole(gather) == encode_frame(first, 4)


def test_the_cap_counts_the_spliced_bytes() -> None:
    gather = Gather()
    with pytest.raises(EncodeError, match="over the"):
        encode_frame_into(gather, assign(bytes(MAX_PAYLOAD)), 4)
    assert gather == b"" and gather.spliced == []


def test_a_gathered_frame_decodes_and_its_checksum_is_checked() -> None:
    data = bytes(range(256)) * (SPLICE_AT // 256 + 3)
    frame = encode_frame_gathered(result(data), 4)
    assert spliced_objects(frame) == [data]
    decoder = FrameDecoder()
    decoder.feed(whole(frame))
    decoded = decoder.next_message()
    assert isinstance(decoded, m.TaskResultMessage) and decoded.result.data == data
    damaged = bytearray(whole(frame))
    damaged[len(damaged) // 2] ^= 1  # a bit of the spliced field
    decoder = FrameDecoder()
    decoder.feed(bytes(damaged))
    with pytest.raises(ChecksumMismatch):
        decoder.next_frame()


def test_gathers_join_with_their_spliced_fields_kept() -> None:
    one, two = b"1" * SPLICE_AT, b"2" * SPLICE_AT
    first, second = encode_frame_gathered(assign(one), 4), encode_frame_gathered(result(two), 4)
    both = Gather()
    both += b"small frames first"
    both.extend_gather(first)
    both.extend_gather(second)
    assert whole(both) == b"small frames first" + whole(first) + whole(second)
    assert [id(x) for x in spliced_objects(both)] == [id(one), id(two)]


# -- pieces on their way -------------------------------------------------------------------


def test_advance_moves_across_pieces_without_copying() -> None:
    pieces: list[Any] = [b"abc", memoryview(b"defg"), b"hi"]
    assert advance(pieces, 0) == pieces
    assert [bytes(p) for p in advance(pieces, 2)] == [b"c", b"defg", b"hi"]
    assert [bytes(p) for p in advance(pieces, 3)] == [b"defg", b"hi"]
    assert [bytes(p) for p in advance(pieces, 8)] == [b"i"]
    assert advance(pieces, 9) == []
    assert pieces == [b"abc", memoryview(b"defg"), b"hi"]  # the list itself is not changed


class RecordingSocket:
    """A real socket that remembers the buffers each ``sendmsg`` was handed."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent: list[list[Any]] = []

    def sendmsg(self, buffers: list[Any], *rest: Any) -> int:
        self.sent.append(list(buffers))
        return self._sock.sendmsg(buffers, *rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two ends of a real TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname(), timeout=10)
        receiver, _ = server.accept()
    receiver.settimeout(20)
    yield sender, receiver
    sender.close()
    receiver.close()


def read_frames(sock: socket.socket, count: int, chunk: int = 1 << 20) -> list[m.Message]:
    decoder = FrameDecoder()
    messages: list[m.Message] = []
    while len(messages) < count:
        data = sock.recv(chunk)
        assert data, "the sender closed early"
        decoder.feed(data)
        while (message := decoder.next_message()) is not None:
            messages.append(message)
    return messages


def test_a_large_field_goes_to_the_socket_as_it_is(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = tcp_pair
    recording = RecordingSocket(sender)
    conn = Connection(recording, name="gather")  # type: ignore[arg-type]
    conn.agree(4)
    data = bytes(range(256)) * (4 * SPLICE_AT // 256)
    message = assign(data)
    reader = threading.Thread(target=lambda: got.extend(read_frames(receiver, 1)))
    got: list[m.Message] = []
    reader.start()
    conn.send(message)
    reader.join(20)
    assert got == [message]
    handed = [piece for call in recording.sent for piece in call]
    assert any(piece is data for piece in handed)  # the payload itself, never a copy of it
    assert all(len(call) <= MAX_PIECES for call in recording.sent)
    conn.close()


def test_partial_sends_of_many_large_frames_arrive_whole_and_in_order(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = tcp_pair
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # many partial sends
    conn = Connection(sender, name="gather")
    conn.agree(4)
    conn.start_writer()
    messages: list[m.Message] = []
    heartbeat = all_examples()["Heartbeat"]  # a small frame between the large ones
    for n in range(12):
        data = bytes([n]) * (SPLICE_AT + n * 4099)
        messages += [assign(data), result(data), heartbeat]
    got: list[m.Message] = []
    reader = threading.Thread(target=lambda: got.extend(read_frames(receiver, len(messages), 7919)))
    reader.start()
    for n in range(0, len(messages), 3):
        conn.post(messages[n : n + 3])
    assert conn.flush(20)
    reader.join(20)
    assert got == messages
    conn.close()
    conn.join_writer()
