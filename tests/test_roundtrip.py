"""Every message and type survives encode -> decode, whatever its values and chunking."""

from __future__ import annotations

import itertools
import uuid

import pytest
from conftest import reframe
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ANY_MESSAGE, messages_of, values_for

from vistrit.protocol import (
    FrameDecoder,
    ProtocolError,
    annotate_frame,
    decode_frame,
    encode_frame,
    wire,
)
from vistrit.protocol.catalogue import V3, first_version
from vistrit.protocol.errors import ChecksumMismatch, TrailingBytes
from vistrit.protocol.examples import all_examples, word_count_task
from vistrit.protocol.frame import HEADER_SIZE
from vistrit.protocol.messages import Heartbeat, Message, TaskSubmit
from vistrit.protocol.schema import wire_type_for
from vistrit.protocol.types import (
    NodeCapabilities,
    NodeInfo,
    NodeState,
    Task,
    TaskPayload,
    TaskPriority,
    TaskResult,
    TaskState,
)


@pytest.mark.parametrize("cls", V3.messages, ids=lambda c: c.WIRE_NAME)
@given(data=st.data())
def test_message_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(messages_of(cls))
    version = first_version(cls)
    frame = encode_frame(message, version=version)
    decoded = decode_frame(frame)
    assert decoded.message == message
    assert decoded.size == len(frame) and decoded.version == version
    assert encode_frame(decoded.message, version=version) == frame
    assert sum(span.length for span in annotate_frame(frame)) == len(frame)


@pytest.mark.parametrize(
    "declared", [NodeCapabilities, NodeInfo, Task, TaskResult, TaskState, TaskPayload]
)
@given(data=st.data())
def test_shared_type_round_trips(declared: type, data: st.DataObject) -> None:
    wt = wire_type_for(declared)
    value = data.draw(values_for(wt))
    out = bytearray()
    wt.encode(value, out)
    decoded, end = wt.decode(bytes(out), 0)
    assert decoded == value
    assert end == len(out)


@given(messages=st.lists(ANY_MESSAGE, min_size=1, max_size=6), cuts=st.data())
def test_stream_in_random_chunks_yields_the_same_messages(
    messages: list[Message], cuts: st.DataObject
) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    points = sorted(cuts.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=30)))
    decoder = FrameDecoder()
    out: list[Message] = []
    for start, stop in zip([0, *points], [*points, len(stream)]):
        decoder.feed(stream[start:stop])
        while (message := decoder.next_message()) is not None:
            out.append(message)
    assert out == messages
    assert decoder.buffered == 0


def test_every_example_fed_one_byte_at_a_time() -> None:
    examples = list(all_examples().values())
    stream = b"".join(encode_frame(m) for m in examples)
    decoder = FrameDecoder()
    out = []
    for index in range(len(stream)):
        assert decoder.next_frame() is None  # nothing is complete before its last byte
        decoder.feed(stream[index : index + 1])
        frame = decoder.next_frame()
        if frame is not None:
            out.append(frame.message)
    assert out == examples


def test_many_frames_in_one_feed() -> None:
    beat = all_examples()["Heartbeat"]
    decoder = FrameDecoder()
    decoder.feed(encode_frame(beat) * 1000)
    count = 0
    while decoder.next_message() is not None:
        count += 1
    assert count == 1000


EMPTY_TASK = Task(
    id=uuid.UUID(int=0),
    name="",
    payload=TaskPayload.Map(function="", input_chunks=()),
    state=TaskState.Pending(),
    priority=TaskPriority.Low,
    max_retries=0,
    timeout_seconds=0,
    tags=(),
    created_at=0,
    submitted_by=None,
    dependencies=(),
)


@pytest.mark.parametrize(
    "message",
    [
        TaskSubmit(task=EMPTY_TASK, request_id=uuid.UUID(int=0)),
        TaskSubmit(
            task=Task(
                **{
                    **{n: getattr(EMPTY_TASK, n) for n in Task.__wire__.names},
                    "id": uuid.UUID(int=2**128 - 1),
                    "name": "ñ 中文 🚀 \u0000 \U0010ffff",
                    "payload": TaskPayload.Reduce(
                        function="concat", intermediate_results=(b"", b"\x00\xff" * 100)
                    ),
                    "max_retries": 2**32 - 1,
                    "timeout_seconds": 2**64 - 1,
                    "created_at": -(2**63),
                    "tags": ("ü", "", "x" * 1000),
                    "dependencies": tuple(uuid.UUID(int=i) for i in range(50)),
                }
            ),
            request_id=uuid.UUID(int=2**128 - 1),
        ),
        Heartbeat(
            node_id=uuid.UUID(int=1),
            timestamp=2**63 - 1,
            running_tasks=2**32 - 1,
            state=NodeState.Offline,
            cpu_usage=255,
            memory_usage=0,
        ),
    ],
    ids=["empty", "maximal-and-non-ascii", "extreme-integers"],
)
def test_edge_values_round_trip(message: Message) -> None:
    frame = encode_frame(message)
    assert decode_frame(frame).message == message
    assert sum(span.length for span in annotate_frame(frame)) == len(frame)


def test_one_mebibyte_of_data_round_trips() -> None:
    message = TaskSubmit(
        task=word_count_task(bytes(range(256)) * 4096), request_id=uuid.UUID(int=5)
    )
    assert decode_frame(encode_frame(message)).message == message


def test_decoded_vectors_are_tuples_and_values_are_immutable() -> None:
    message = decode_frame(encode_frame(all_examples()["WorkerListResponse"])).message
    assert isinstance(message.workers, tuple)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        message.request_id = uuid.UUID(int=1)  # type: ignore[misc]


def test_uuid_fast_path_gives_ordinary_uuids() -> None:
    value = uuid.uuid4()
    out = bytearray()
    wire.UUID.encode(value, out)
    decoded, _ = wire.UUID.decode(bytes(out), 0)
    assert decoded == value and hash(decoded) == hash(value) and str(decoded) == str(value)
    assert decoded.version == 4 and decoded.bytes == value.bytes


LARGE = TaskSubmit(task=word_count_task(bytes(range(256)) * 2048), request_id=uuid.UUID(int=6))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_large_frame_received_in_place_in_any_pieces(data: st.DataObject) -> None:
    beat = Heartbeat(node_id=uuid.UUID(int=1), timestamp=2, running_tasks=0,
                     state=NodeState.Ready, cpu_usage=None, memory_usage=None)  # fmt: skip
    stream = encode_frame(beat) + encode_frame(LARGE) + encode_frame(beat)
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=30, unique=True))
    bounds = [0, *sorted(cuts), len(stream)]
    decoder, got = FrameDecoder(), []
    for start, end in itertools.pairwise(bounds):
        room = decoder.room()
        if room is not None and data.draw(st.booleans()):  # as recv_into would
            count = min(end - start, len(room))
            room[:count] = stream[start : start + count]
            room.release()  # (a view must be let go before the next call)
            decoder.filled(count)
            start += count
        elif room is not None:
            room.release()
        decoder.feed(stream[start:end])  # as recv would: the rest goes where it belongs
        assert decoder.buffered <= end
        while (frame := decoder.next_frame()) is not None:
            got.append(frame.message)
    assert got == [beat, LARGE, beat]
    assert decoder.buffered == 0 and decoder.room() is None


def test_a_large_frame_decoded_where_it_lies_is_checked_as_any_other() -> None:
    import zlib

    from vistrit.protocol.errors import ChecksumMismatch, InvalidUtf8

    frame = bytearray(encode_frame(LARGE))
    decoder = FrameDecoder()
    decoder.feed(bytes(frame))
    decoded = decoder.next_frame()
    assert decoded is not None and decoded.message == LARGE
    assert type(decoded.message.task.payload.data) is bytes  # a copy, not a view of the buffer
    flipped = bytearray(frame)
    flipped[len(flipped) // 2] ^= 0xFF
    decoder = FrameDecoder()
    decoder.feed(bytes(flipped))
    with pytest.raises(ChecksumMismatch):
        decoder.next_frame()
    # A name that is not UTF-8, under a checksum that is right: the error names the field.
    name_at = bytes(frame).index(b"count words")
    bad = bytearray(frame)
    bad[name_at] = 0xFF
    bad[-4:] = zlib.crc32(memoryview(bad)[4:-4]).to_bytes(4, "big")
    decoder = FrameDecoder()
    decoder.feed(bytes(bad))
    with pytest.raises(InvalidUtf8, match="not UTF-8"):
        decoder.next_frame()


def test_only_a_large_frame_is_received_in_place() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(all_examples()["TaskSubmit"])[:12])
    assert decoder.room() is None  # small: received as it comes
    decoder = FrameDecoder(max_payload=1024 * 1024)
    decoder.feed(encode_frame(LARGE)[:5])
    assert decoder.room() is None  # no whole header yet
    over = FrameDecoder(max_payload=300 * 1024)
    over.feed(encode_frame(LARGE)[:20])
    assert over.room() is None  # over this decoder's cap: next_frame refuses it
    with pytest.raises(ProtocolError):
        over.next_frame()


def test_a_bad_large_frame_is_refused_with_the_same_errors() -> None:
    frame = encode_frame(LARGE)
    payload = frame[HEADER_SIZE:-4]
    with pytest.raises(TrailingBytes):
        decode_frame(reframe(payload + b"\0", TaskSubmit.TYPE_BYTE))
    broken = bytearray(frame)
    broken[-1] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        decode_frame(bytes(broken))
    decoder = FrameDecoder()
    decoder.feed(reframe(payload + b"\0", TaskSubmit.TYPE_BYTE))
    with pytest.raises(TrailingBytes):
        decoder.next_frame()
    with pytest.raises(TrailingBytes):  # and for good: the stream cannot be trusted
        decoder.next_frame()


def test_a_value_without_fields_is_decoded_as_one_shared_object() -> None:
    """Every Pending state (or bare request) is equal and frozen: one object serves all."""
    first = decode_frame(encode_frame(TaskSubmit(task=word_count_task(), request_id=uuid.uuid4())))
    second = decode_frame(encode_frame(TaskSubmit(task=word_count_task(), request_id=uuid.uuid4())))
    state = first.message.task.state  # type: ignore[attr-defined]
    assert state is second.message.task.state  # type: ignore[attr-defined]
    assert state == TaskState.Pending() and type(state) is TaskState.Pending
