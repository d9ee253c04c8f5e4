"""Hostile bytes are ordinary input: random and mutated frames never raise anything but a
``ProtocolError`` (or decode to a valid message), and never allocate beyond the frame.

The suite runs a short fuzz; a long run is ``VISTRIT_HYPOTHESIS=long pytest tests/test_fuzz.py``
(see docs/testing.rst).
"""

from __future__ import annotations

import contextlib
import random
import struct
import tracemalloc
from collections.abc import Callable

from conftest import CONSISTENT, payload_of, reframe
from hypothesis import given
from hypothesis import strategies as st

from vistrit.protocol import FrameDecoder, ProtocolError, annotate_frame, decode_frame, encode_frame
from vistrit.protocol.frame import Frame, decode_streamed
from vistrit.protocol.sharing import forget_recent

FRAMES = [v.frame for v in CONSISTENT]


def decode_all(data: bytes) -> None:
    """Decode a stream completely: frames or a ProtocolError, nothing else may escape; and
    decoded as one whole frame, the same answer as the stream decoder's."""
    assert_whole_frame_decoders_agree(data)
    decoder = FrameDecoder()
    decoder.feed(data)
    with contextlib.suppress(ProtocolError):
        while (frame := decoder.next_frame()) is not None:
            assert encode_frame(frame.message) is not None
    with contextlib.suppress(ProtocolError):
        annotate_frame(data)


def outcome(decode: Callable[[bytes], Frame], data: bytes) -> object:
    try:
        return decode(data)
    except ProtocolError as exc:
        return type(exc), str(exc), exc.offset


def assert_whole_frame_decoders_agree(data: bytes) -> None:
    """``decode_frame`` decodes a well-formed frame where it lies, without a stream decoder:
    it must say exactly what the stream decoder says, frame or error, for any bytes."""
    assert outcome(decode_frame, data) == outcome(decode_streamed, data)


@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    decode_all(data)
    decode_all(b"VIST\x01" + data)


@given(
    frame=st.sampled_from(FRAMES),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    fix_checksum=st.booleans(),
)
def test_mutated_real_frames(
    frame: bytes, edits: list[tuple[int, int]], fix_checksum: bool
) -> None:
    data = bytearray(frame)
    for position, value in edits:
        data[position % len(data)] = value
    if fix_checksum and len(data) > 14:  # let the mutation reach the payload decoder
        data = bytearray(reframe(payload_of(bytes(data)), data[5]))
    decode_all(bytes(data))


@given(frame=st.sampled_from(FRAMES), cut=st.integers(0, 400), extra=st.binary(max_size=20))
def test_cut_and_extended_payloads(frame: bytes, cut: int, extra: bytes) -> None:
    payload = payload_of(frame)
    decode_all(reframe(payload[: cut % (len(payload) + 1)] + extra, frame[5]))


def test_mutations_never_allocate_beyond_the_frame() -> None:
    """Lengths and counts are checked against the bytes left before anything is allocated."""
    rng = random.Random(2026)
    tracemalloc.start()
    try:
        for _ in range(3000):
            frame = bytearray(rng.choice(FRAMES))
            payload = bytearray(payload_of(bytes(frame)))
            position = rng.randrange(len(payload) - 7)
            # plant a huge u64 where a length or count may be
            payload[position : position + 8] = struct.pack(
                "<Q", rng.choice([2**31, 2**40, 2**63, 2**64 - 1])
            )
            data = reframe(bytes(payload), frame[5])
            forget_recent()  # its table growing (a few hundred KiB at most) is not the frame's
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            with contextlib.suppress(ProtocolError):
                decode_frame(data)
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 64 * 1024, f"decoding a {len(data)}-byte frame took {peak} bytes"
    finally:
        tracemalloc.stop()
