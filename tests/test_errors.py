"""One test per error kind, each on a corrupted real frame from the reference capture.

Every error must be a ``ProtocolError`` subclass naming what is wrong, carry the ``ErrorCode``
an ``Error`` reply would use, and (for payload errors) name the field it happened in.
"""

from __future__ import annotations

import struct

import pytest
from conftest import payload_of, reframe, vector

from vistrit.protocol import FrameDecoder, annotate_frame, decode_frame, encode_frame
from vistrit.protocol.errors import (
    BadBool,
    BadEnumIndex,
    BadLength,
    BadMagic,
    BadOptionTag,
    BadValue,
    ChecksumMismatch,
    EncodeError,
    ErrorCode,
    FrameTooLarge,
    InvalidUtf8,
    ProtocolError,
    TrailingBytes,
    TruncatedPayload,
    TypeByteMismatch,
    UnknownMessageType,
    UnsupportedVersion,
)
from vistrit.protocol.examples import all_examples
from vistrit.protocol.frame import MAX_PAYLOAD
from vistrit.protocol.messages import Heartbeat, TaskCancelAck

HEARTBEAT = vector("Heartbeat")  # 46-byte payload: see PROTOCOL-v1.md §4
HANDSHAKE = vector("Handshake")  # worker-a's Handshake


def patched(frame: bytes, offset: int, new: bytes) -> bytes:
    """*frame* with bytes replaced at a payload *offset*, header and checksum made right."""
    payload = bytearray(payload_of(frame))
    payload[offset : offset + len(new)] = new
    return reframe(bytes(payload), frame[5])


def expect(frame: bytes, error: type[ProtocolError], match: str) -> ProtocolError:
    """Both the decoder and the annotator refuse *frame* with the same error."""
    with pytest.raises(error, match=match) as decoded:
        decode_frame(frame)
    with pytest.raises(error, match=match):
        annotate_frame(frame)
    return decoded.value


def test_bad_magic_is_refused_from_the_first_wrong_byte() -> None:
    expect(b"VEST" + HEARTBEAT[4:], BadMagic, "bad magic 56 45 53 54")
    decoder = FrameDecoder()
    decoder.feed(b"GET ")  # an HTTP client on the wrong port: refused without waiting
    with pytest.raises(BadMagic):
        decoder.next_frame()


def test_unsupported_version() -> None:
    error = expect(HEARTBEAT[:4] + b"\x07" + HEARTBEAT[5:], UnsupportedVersion, "version 7")
    assert error.code is ErrorCode.Protocol


def test_unknown_type_byte() -> None:
    error = expect(HEARTBEAT[:5] + b"\x99" + HEARTBEAT[6:], UnknownMessageType, "0x99")
    assert error.code is ErrorCode.InvalidRequest


def test_type_byte_disagreeing_with_payload_variant() -> None:
    frame = reframe(payload_of(HEARTBEAT), 0x04)  # says HeartbeatAck, carries a Heartbeat
    expect(frame, TypeByteMismatch, "0x04 says HeartbeatAck, payload variant 2 is Heartbeat")


def test_length_over_the_cap_is_refused_before_the_payload_arrives() -> None:
    header = HEARTBEAT[:6] + struct.pack(">I", MAX_PAYLOAD + 1)
    decoder = FrameDecoder()
    decoder.feed(header)  # the header alone: nothing of the payload is buffered
    with pytest.raises(FrameTooLarge, match="16777217"):
        decoder.next_frame()
    assert decoder.buffered == len(header)
    smaller = FrameDecoder(max_payload=45)
    smaller.feed(HEARTBEAT)
    with pytest.raises(FrameTooLarge, match="46 is over the 45-byte cap"):
        smaller.next_frame()


def test_checksum_mismatch_names_expected_and_actual() -> None:
    bad = HEARTBEAT[:-1] + bytes([HEARTBEAT[-1] ^ 1])
    error = expect(bad, ChecksumMismatch, "Checksum mismatch: expected 0x4664bff3, got 0x4664bff2")
    assert isinstance(error, ChecksumMismatch)
    assert (error.expected, error.actual) == (0x4664BFF3, 0x4664BFF2)
    corrupt_payload = HEARTBEAT[:30] + b"\xee" + HEARTBEAT[31:]
    expect(corrupt_payload, ChecksumMismatch, "Checksum mismatch")


def test_truncated_payload_names_the_field() -> None:
    short = reframe(payload_of(HEARTBEAT)[:38], 0x03)  # ends inside running_tasks
    expect(short, TruncatedPayload, "running_tasks")
    no_option = reframe(payload_of(HEARTBEAT)[:44], 0x03)
    expect(no_option, TruncatedPayload, "cpu_usage")


def test_frame_shorter_than_its_header_says() -> None:
    with pytest.raises(TruncatedPayload, match="not a whole frame"):
        decode_frame(HEARTBEAT[:-1])
    with pytest.raises(TruncatedPayload, match="announces 60"):
        annotate_frame(HEARTBEAT[:-1])


def test_bytes_left_over_after_the_message() -> None:
    frame = reframe(payload_of(HEARTBEAT) + b"\x00\x00", 0x03)
    expect(frame, TrailingBytes, "2 byte\\(s\\) left over after Heartbeat")
    with pytest.raises(TrailingBytes, match="after the frame"):
        decode_frame(HEARTBEAT + b"\x00")


def test_invalid_utf8_names_the_field() -> None:
    # worker-a's name starts at payload offset 83 (frame offset 93)
    error = expect(patched(HANDSHAKE, 83, b"\xff"), InvalidUtf8, "node_info.name")
    assert error.code is ErrorCode.Protocol


def test_bad_enum_index() -> None:
    expect(patched(HEARTBEAT, 40, b"\x09"), BadEnumIndex, "state: NodeState variant index 9")
    expect(patched(HEARTBEAT, 0, b"\x63"), BadEnumIndex, "Message variant index 99")
    # SocketAddr is an enum too (0 = V4, 1 = V6)
    expect(patched(HANDSHAKE, 32, b"\x05"), BadEnumIndex, "node_info.address")


def test_bad_option_tag() -> None:
    expect(patched(HEARTBEAT, 44, b"\x02"), BadOptionTag, "cpu_usage: Option tag is 0x02")


def test_bad_bool() -> None:
    disconnect = vector("Disconnect")  # graceful: true is the last payload byte
    bad = reframe(payload_of(disconnect)[:-1] + b"\x02", 0x05)
    expect(bad, BadBool, "graceful: bool byte is 0x02")


def test_absurd_string_length_is_refused_before_allocating() -> None:
    length = struct.pack("<Q", 1 << 40)
    expect(
        patched(HANDSHAKE, 75, length), BadLength, "node_info.name: String length of 1099511627776"
    )


def test_negative_length_is_refused() -> None:
    length = struct.pack("<Q", 2**64 - 1)
    expect(patched(HANDSHAKE, 58, length), BadLength, "negative as i64")


def test_absurd_vector_count_is_refused_before_allocating() -> None:
    # tags count at payload offset 58 of the Handshake: a billion strings in 50 bytes
    count = struct.pack("<Q", 10**9)
    expect(patched(HANDSHAKE, 58, count), BadLength, "node_info.capabilities.tags")


def test_uuid_with_a_wrong_length_prefix() -> None:
    expect(patched(HEARTBEAT, 4, b"\x0f"), BadValue, "node_id: NodeId length prefix is 15")


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"VIST\x07")
    decoder.feed(HEARTBEAT[5:])
    with pytest.raises(UnsupportedVersion):
        decoder.next_frame()
    decoder.feed(HEARTBEAT)
    with pytest.raises(UnsupportedVersion):
        decoder.next_frame()


def test_annotation_error_keeps_the_spans_read_before_it() -> None:
    with pytest.raises(BadOptionTag) as caught:
        annotate_frame(patched(HEARTBEAT, 44, b"\x02"))
    fields = [span.field for span in caught.value.spans]  # type: ignore[attr-defined]
    assert fields[:4] == ["magic", "version", "type", "length"]
    assert "state" in fields and "cpu_usage" not in fields


# -- local misuse: EncodeError, never a ProtocolError ------------------------------------


def beat(**changes: object) -> Heartbeat:
    base = all_examples()["Heartbeat"]
    fields = {name: getattr(base, name) for name in Heartbeat.__wire__.names}
    return Heartbeat(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"cpu_usage": 256}, "Heartbeat.cpu_usage: ubyte format"),
        ({"running_tasks": -1}, "running_tasks"),
        ({"state": 2}, "NodeState expected"),
        ({"node_id": "not a uuid"}, "Heartbeat.node_id/.*bytes"),
    ],
)
def test_encoding_an_impossible_value_is_a_local_error(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(EncodeError, match=match):
        encode_frame(beat(**changes))


def test_encoding_other_local_misuse() -> None:
    with pytest.raises(EncodeError, match="no message of protocol v9"):
        encode_frame(beat(), version=9)
    with pytest.raises(EncodeError, match="TaskCancelAck is no message of protocol v1"):
        encode_frame(TaskCancelAck(task_id=beat().node_id, accepted=True))
    with pytest.raises(EncodeError, match="no message"):
        encode_frame("hello")  # type: ignore[arg-type]
    big = all_examples()["TaskSubmit"]
    task = big.task  # type: ignore[attr-defined]
    fields = {name: getattr(task, name) for name in type(task).__wire__.names}
    payload = type(task.payload)(function="echo", data=bytes(MAX_PAYLOAD))
    with pytest.raises(EncodeError, match="over the 16777216 cap"):
        encode_frame(
            type(big)(task=type(task)(**{**fields, "payload": payload}), request_id=big.request_id)
        )  # type: ignore[call-arg]
    with pytest.raises(EncodeError, match="surrogates"):
        encode_frame(all_examples()["Error"].__class__(code=ErrorCode.Unknown, message="\udc80"))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"name": 5}, r"^TaskSubmit\.task: Task\.name: 'int' object"),
        ({"id": "x"}, r"^TaskSubmit\.task: Task\.id: 'str' object"),
        ({"tags": "ab"}, r"^TaskSubmit\.task: Task\.tags: Vec<String> expected a sequence"),
        ({"priority": 7}, r"^TaskSubmit\.task: Task\.priority/max_retries/timeout_seconds: "),
        ({"dependencies": (1,)}, r"^TaskSubmit\.task: Task\.dependencies: 'int' object"),
    ],
)
def test_an_impossible_value_deep_in_a_message_is_named_by_its_path(
    changes: dict[str, object], match: str
) -> None:
    """Each struct on the way names the field it was writing: the path to the bad value."""
    submit = all_examples()["TaskSubmit"]
    task = submit.task  # type: ignore[attr-defined]
    fields = {name: getattr(task, name) for name in type(task).__wire__.names}
    bad = type(submit)(task=type(task)(**{**fields, **changes}), request_id=submit.request_id)  # type: ignore[call-arg]
    with pytest.raises(EncodeError, match=match):
        encode_frame(bad)
