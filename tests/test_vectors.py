"""The reference implementation's captured frames decode, re-encode and annotate exactly."""

from __future__ import annotations

import pytest
from conftest import CONSISTENT, MISMATCHED, VECTORS, Vector, vector

from vistrit.protocol import (
    FrameDecoder,
    annotate_frame,
    decode_frame,
    encode_frame,
)
from vistrit.protocol.catalogue import V1
from vistrit.protocol.errors import TypeByteMismatch
from vistrit.protocol.frame import decode_payload


def test_every_v1_message_kind_with_a_vector_is_covered() -> None:
    names = {v.name for v in VECTORS}
    assert len(VECTORS) == 35
    assert len(names) == 19  # TaskStatus, ElectionVote, LeaderAnnounce were not captured


@pytest.mark.parametrize("vec", CONSISTENT, ids=lambda v: v.label)
def test_vector_decodes_to_the_named_message(vec: Vector) -> None:
    frame = decode_frame(vec.frame)
    assert frame.version == 1
    assert frame.size == len(vec.frame)
    assert vec.name == type(frame.message).WIRE_NAME
    assert vec.type_byte == type(frame.message).TYPE_BYTE


@pytest.mark.parametrize("vec", CONSISTENT, ids=lambda v: v.label)
def test_vector_reencodes_byte_identically(vec: Vector) -> None:
    assert encode_frame(decode_frame(vec.frame).message) == vec.frame


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v.label)
def test_vector_annotation_covers_every_byte_once(vec: Vector) -> None:
    try:
        spans = annotate_frame(vec.frame)
    except TypeByteMismatch as exc:
        assert vec in MISMATCHED
        spans = list(exc.spans)  # type: ignore[arg-type]
    position = 0
    for span in spans:
        assert span.offset == position, f"gap or overlap before {span.field}"
        assert span.length > 0
        position += span.length
    assert position == len(vec.frame)


def test_the_whole_capture_decodes_as_one_stream_fed_byte_by_byte() -> None:
    stream = b"".join(v.frame for v in CONSISTENT)
    decoder = FrameDecoder()
    names = []
    for index in range(len(stream)):
        decoder.feed(stream[index : index + 1])
        while (frame := decoder.next_frame()) is not None:
            names.append(type(frame.message).WIRE_NAME)
    assert names == [v.name for v in CONSISTENT]
    assert decoder.buffered == 0


def test_type_byte_disagreeing_with_payload_is_refused_unlike_the_reference() -> None:
    (vec,) = MISMATCHED
    with pytest.raises(TypeByteMismatch, match=r"says ClusterStatusRequest.*WorkerListRequest"):
        decode_frame(vec.frame)
    # What the reference did instead: decode the payload by its own variant index.
    with pytest.raises(TypeByteMismatch):
        decode_payload(vec.frame[10:-4], V1, vec.type_byte)
    message = decode_payload(vec.frame[10:-4], V1, 0x22)
    assert type(message).WIRE_NAME == "WorkerListRequest"
    assert encode_frame(message)[10:-4] == vec.frame[10:-4]


def test_selected_vector_fields_match_the_capture() -> None:
    """Spot checks, field by field, of what PROTOCOL-v1.md says about these frames."""
    by_label = {v.label: v for v in VECTORS}
    hello = decode_frame(by_label["TaskSubmit-conn2"].frame).message
    assert hello.task.name == "hello"  # type: ignore[attr-defined]
    assert hello.task.payload.command == "echo hello from vistrit"  # type: ignore[attr-defined]
    assert hello.task.max_retries == 3 and hello.task.timeout_seconds == 300  # type: ignore[attr-defined]
    result = decode_frame(vector("TaskResult")).message
    assert result.result.data == b"14" and result.result.exit_code == 0  # type: ignore[attr-defined]
    ack = decode_frame(by_label["HandshakeAck-conn1"].frame).message
    assert str(ack.coordinator_info.address) == "127.0.0.1:7878"  # type: ignore[attr-defined]
    crc_error = decode_frame(by_label["Error-conn31"].frame).message
    assert crc_error.message == "Checksum mismatch: expected 0xd3c3e3fb, got 0xd3c3e304"  # type: ignore[attr-defined]
