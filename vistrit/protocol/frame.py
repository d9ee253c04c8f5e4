"""Frames: the header, the checksum, and an incremental decoder (PROTOCOL-v1.md §1).

Byte map of one frame (the header is big-endian, network order)::

    offset  size    field      encoding
    0       4       magic      56 49 53 54  ("VIST", u32 BE 0x56495354)
    4       1       version    u8, selects the catalogue (1 for v1)
    5       1       type       u8, the message's type byte (must agree with the payload)
    6       4       length     u32 BE, payload bytes, at most MAX_PAYLOAD (16 MiB)
    10      length  payload    the ``Message`` enum, little-endian (see schema.py)
    10+len  4       checksum   u32 BE, CRC-32 (zlib.crc32) of frame[4 : 10+length]

The checksum covers the version, type and length bytes and the payload: everything but the
magic and itself. ``HEADER`` below is the one struct that packs and unpacks bytes 0-9.

:class:`FrameDecoder` is sans-I/O: feed it whatever bytes arrived, in chunks of any size,
and ask for complete frames. It refuses an oversized length as soon as the header is in,
before it buffers any of the payload, and garbage as soon as the magic is wrong.

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.messages`.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from vistrit.protocol.catalogue import CATALOGUES, Catalogue
from vistrit.protocol.errors import (
    BadMagic,
    ChecksumMismatch,
    EncodeError,
    FrameTooLarge,
    ProtocolError,
    TrailingBytes,
    TruncatedPayload,
    TypeByteMismatch,
    UnsupportedVersion,
)
from vistrit.protocol.gather import Gather
from vistrit.protocol.messages import Message
from vistrit.protocol.schema import EnumType
from vistrit.protocol.spans import Annotator

MAGIC = 0x56495354
MAGIC_BYTES = b"VIST"
HEADER = struct.Struct(">IBBI")  # magic, version, type byte, payload length
HEADER_SIZE = HEADER.size  # 10
#: Where each header field starts (the table above), for errors that name the byte at
#: fault; the checksum covers the frame from CRC_START on, that is everything but the magic.
MAGIC_SIZE = 4
VERSION_OFFSET = MAGIC_SIZE  # 4
TYPE_OFFSET = VERSION_OFFSET + 1  # 5
LENGTH_OFFSET = TYPE_OFFSET + 1  # 6
CRC_START = VERSION_OFFSET
CHECKSUM = struct.Struct(">I")
CHECKSUM_SIZE = CHECKSUM.size  # 4
#: The largest payload a frame may carry: 16 MiB.
MAX_PAYLOAD = 16 * 1024 * 1024

_MESSAGE = EnumType(Message)


class Frame(NamedTuple):
    """A decoded frame: its protocol version, its message, and its size on the wire."""

    version: int
    message: Message
    size: int


def encode_frame(message: Message, version: int = 1) -> bytes:
    """The whole frame for *message*: header, payload, checksum.

    Raises :class:`EncodeError` if the message cannot be encoded, is not part of *version*,
    or its payload is over :data:`MAX_PAYLOAD`.
    """
    out = bytearray()
    encode_frame_into(out, message, version)
    return bytes(out)


def encode_frame_into(out: bytearray, message: Message, version: int = 1) -> None:
    """Append the frame for *message* to *out*, as :func:`encode_frame` makes it.

    What a connection sends a batch of frames with: each is encoded where it will be sent
    from, never copied out into a ``bytes`` of its own and then joined to the others. Into
    a :class:`~vistrit.protocol.gather.Gather`, a large ``bytes`` field is not copied at
    all, but spliced in. If the message cannot be encoded, *out* is left as it was and
    :class:`EncodeError` is raised.
    """
    catalogue = CATALOGUES.get(version)
    cls = type(message)
    if catalogue is None or cls not in catalogue.classes:
        raise EncodeError(f"{cls.__name__} is no message of protocol v{version}")
    start = len(out)
    out += bytes(HEADER_SIZE)  # the header, written once the length is known
    codec = cls.__wire__
    out += codec.prefix
    try:
        codec.encode(message, out)
    except (TypeError, AttributeError, UnicodeError, OverflowError, EncodeError) as exc:
        _truncate(out, start)
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"{cls.WIRE_NAME}: {exc}") from None
    length = len(out) - start - HEADER_SIZE
    gather = out if type(out) is Gather and out.spliced else None  # large fields, not copied
    spliced = gather.spliced_size(start) if gather is not None else 0
    if length + spliced > MAX_PAYLOAD:
        _truncate(out, start)
        raise EncodeError(
            f"{cls.WIRE_NAME} payload is {length + spliced} bytes, over the {MAX_PAYLOAD} cap"
        )
    HEADER.pack_into(out, start, MAGIC, version, cls.TYPE_BYTE, length + spliced)
    if gather is not None and spliced:  # the checksum runs over the pieces in turn
        out += CHECKSUM.pack(gather.crc32(start + CRC_START))
    else:
        out += CHECKSUM.pack(zlib.crc32(memoryview(out)[start + CRC_START :]))


def encode_frame_gathered(message: Message, version: int = 1) -> Gather:
    """The frame for *message*, as :func:`encode_frame` makes it, in a
    :class:`~vistrit.protocol.gather.Gather`: its large ``bytes`` fields are not copied.
    A connection sends it as it is (``Connection.post``)."""
    out = Gather()
    encode_frame_into(out, message, version)
    return out


def _truncate(out: bytearray, start: int) -> None:
    if type(out) is Gather:
        out.truncate(start)
    else:
        del out[start:]


def parse_header(header: bytes, max_payload: int = MAX_PAYLOAD) -> tuple[Catalogue, int, int]:
    """Check the 10 header bytes; return (catalogue, type byte, payload length)."""
    magic, version, type_byte, length = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise BadMagic(
            f"bad magic {header[:MAGIC_SIZE].hex(' ')}, expected 56 49 53 54 ('VIST')", offset=0
        )
    catalogue = CATALOGUES.get(version)
    if catalogue is None:
        known = ", ".join(str(v) for v in sorted(CATALOGUES))
        raise UnsupportedVersion(
            f"protocol version {version} is not supported ({known})", offset=VERSION_OFFSET
        )
    catalogue.message_for_type(type_byte, offset=TYPE_OFFSET)
    if length > max_payload:
        raise FrameTooLarge(
            f"payload length {length} is over the {max_payload}-byte cap", offset=LENGTH_OFFSET
        )
    return catalogue, type_byte, length


def header_error(header: bytes, max_payload: int = MAX_PAYLOAD) -> ProtocolError:
    """The precise error of a header known to be bad (the decoder's fast check failed)."""
    try:
        parse_header(header, max_payload)
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"header {header.hex()} is fine")


def check_crc(header: bytes, payload: bytes, trailer: bytes) -> None:
    """Compare the trailer's CRC-32 with the one of version..payload."""
    (expected,) = CHECKSUM.unpack(trailer)
    actual = zlib.crc32(payload, zlib.crc32(header[CRC_START:HEADER_SIZE]))
    if expected != actual:
        raise ChecksumMismatch(expected, actual, offset=HEADER_SIZE + len(payload))


def decode_payload(payload: bytes, catalogue: Catalogue, type_byte: int, start: int = 0) -> Message:
    """Decode a checked payload: exactly one message, agreeing with the header's type byte.

    The payload is ``payload[start:]`` (the decoder passes the checksummed bytes whole, to
    save a copy). On an error the payload is walked again by the annotator, so that the
    error names the field it happened in.
    """
    message: Message
    try:
        message, end = _MESSAGE.decode(payload, start)
    except (ProtocolError, struct.error):
        # The fast path keeps no field paths; the slow annotating walk meets the same
        # error and raises it with the field's name.
        _MESSAGE.annotate(Annotator(bytes(payload[start:])), 0, "")
        raise  # not reached: the walk above raises
    cls = type(message)
    if catalogue.by_variant.get(cls.VARIANT) is not cls:
        raise TypeByteMismatch(f"{cls.WIRE_NAME} is no message of v{catalogue.version}")
    expected = catalogue.by_type_byte[type_byte]
    if cls is not expected:
        raise TypeByteMismatch(
            f"type byte 0x{type_byte:02x} says {expected.WIRE_NAME}, "
            f"payload variant {cls.VARIANT} is {cls.WIRE_NAME}",
            offset=TYPE_OFFSET,
        )
    if end != len(payload):
        size = len(payload) - start
        raise TrailingBytes(
            f"{len(payload) - end} byte(s) left over after {cls.WIRE_NAME} "
            f"(message ends at payload offset {end - start} of {size})",
            offset=HEADER_SIZE + end - start,
        )
    return message


def split_frames(data: bytes, max_payload: int = MAX_PAYLOAD) -> tuple[list[bytes], bytes]:
    """Cut whole frames off the front of *data* by their length fields, without decoding.

    Returns ``(frames, rest)``: *rest* is an incomplete frame still waiting for bytes. If
    the bytes at a frame boundary cannot start a frame (bad magic, a length over the cap),
    everything from there is returned as one last "frame", so that the annotator reports
    why. Used by the wire tracer and ``vistrit decode``.
    """
    frames = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        magic, _, _, length = HEADER.unpack_from(data, pos)
        if magic != MAGIC or length > max_payload:
            frames.append(data[pos:])
            return frames, b""
        end = pos + HEADER_SIZE + length + CHECKSUM_SIZE
        if end > len(data):
            break
        frames.append(data[pos:end])
        pos = end
    return frames, data[pos:]


def decode_frame(data: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Decode *data*, which must be exactly one whole frame.

    A well-formed frame is checked and decoded where it lies: a follower decodes every
    record its leader replicates this way, and a stream decoder made for each one cost a
    sixth of the decoding (``docs/performance.rst``). Anything else goes through a
    :class:`FrameDecoder`, which says what is wrong, exactly as it does on a connection."""
    if type(data) is bytes and len(data) >= HEADER_SIZE + CHECKSUM_SIZE:
        magic, version, type_byte, length = HEADER.unpack_from(data)
        catalogue = CATALOGUES.get(version)
        end = HEADER_SIZE + length
        if (
            magic == MAGIC
            and catalogue is not None
            and type_byte in catalogue.by_type_byte
            and length <= max_payload
            and len(data) == end + CHECKSUM_SIZE
        ):
            (expected,) = CHECKSUM.unpack_from(data, end)
            checked = data[CRC_START:end]
            actual = zlib.crc32(checked)
            if actual != expected:
                raise ChecksumMismatch(expected, actual, offset=end)
            message = decode_payload(checked, catalogue, type_byte, start=HEADER_SIZE - CRC_START)
            return Frame(version, message, len(data))
    return decode_streamed(data, max_payload)


def decode_streamed(data: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Decode *data*, which must be exactly one whole frame, through a
    :class:`FrameDecoder`, as a connection would: what :func:`decode_frame` falls back on,
    and what its direct path must agree with."""
    decoder = FrameDecoder(max_payload)
    decoder.feed(data)
    frame = decoder.next_frame()
    if frame is None:
        raise TruncatedPayload(f"{len(data)} bytes are not a whole frame", offset=len(data))
    if decoder.buffered:
        raise TrailingBytes(f"{decoder.buffered} byte(s) after the frame", offset=frame.size)
    return frame


#: After a frame larger than this, the decoder copies what is left into a new buffer, so
#: that the memory a large frame took is given back instead of held for the connection.
SHRINK_AFTER = 1024 * 1024

#: A payload this large is received in place (:meth:`FrameDecoder.room`).
RECEIVE_INTO = 256 * 1024


class FrameDecoder:
    """Turns a byte stream into frames, whatever the chunking of the stream.

    Use: ``feed(data)`` with each chunk received, then call ``next_frame()`` until it returns
    ``None`` (it needs more bytes). A :class:`ProtocolError` is final: the stream cannot be
    resynchronised, so every later call raises the same error; close the connection.

    A large frame may instead be received in place: once its header is in, :meth:`room`
    gives the part of a buffer of the frame's size still to fill (for ``recv_into``; let go
    of the view before the next call), and :meth:`filled` says how much was. Its bytes are
    then never copied from chunk to buffer.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self._large: bytearray | None = None  # a large frame being received in place
        self._large_filled = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer) + (self._large_filled if self._large is not None else 0)

    def feed(self, data: bytes) -> None:
        """Add bytes, as they came from the network, in any pieces."""
        if self._large is not None:  # the rest of a large frame first
            take = min(len(data), len(self._large) - self._large_filled)
            self._large[self._large_filled : self._large_filled + take] = data[:take]
            self.filled(take)
            data = data[take:]
        self._buffer += data

    def room(self) -> memoryview | None:
        """Where the rest of a large frame (a payload of :data:`RECEIVE_INTO` bytes or more)
        may be received straight into; ``None`` if no such frame is started."""
        if self._large is None:
            buffer = self._buffer
            if self._error is not None or len(buffer) < HEADER_SIZE:
                return None
            magic, _, _, length = HEADER.unpack_from(buffer)
            total = HEADER_SIZE + length + CHECKSUM_SIZE
            if magic != MAGIC or not RECEIVE_INTO <= length <= self.max_payload:
                return None  # a small frame, or a bad one (next_frame says why)
            if len(buffer) >= total:
                return None
            self._large, self._large_filled = bytearray(total), len(buffer)
            self._large[: len(buffer)] = buffer
            self._buffer = bytearray()
        return memoryview(self._large)[self._large_filled :]

    def filled(self, count: int) -> None:
        """*count* more bytes of the large frame were received into :meth:`room`."""
        assert self._large is not None
        self._large_filled += count
        if self._large_filled == len(self._large):  # whole: the frame is the buffer now
            self._buffer, self._large = self._large, None

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` if more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_frame()
        except ProtocolError as exc:
            self._error = exc
            raise

    def next_message(self) -> Message | None:
        """The next whole message, or None if more bytes are needed."""
        frame = self.next_frame()
        return None if frame is None else frame.message

    def _next_frame(self) -> Frame | None:
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE:
            if not MAGIC_BYTES.startswith(buffer[:MAGIC_SIZE]):  # refuse garbage without waiting
                raise header_error(bytes(buffer[:MAGIC_SIZE]).ljust(HEADER_SIZE, b"\0"))
            return None
        magic, version, type_byte, length = HEADER.unpack_from(buffer)
        catalogue = CATALOGUES.get(version)
        if (
            magic != MAGIC
            or catalogue is None
            or type_byte not in catalogue.by_type_byte
            or length > self.max_payload
        ):
            raise header_error(bytes(buffer[:HEADER_SIZE]), self.max_payload)
        end = HEADER_SIZE + length
        if len(buffer) < end + CHECKSUM_SIZE:
            return None
        (expected,) = CHECKSUM.unpack_from(buffer, end)
        if length >= RECEIVE_INTO and len(buffer) == end + CHECKSUM_SIZE:
            return self._large_frame(version, catalogue, type_byte, expected, end)
        # Version, type, length and payload: what the CRC covers, copied out once. (Slicing
        # the bytearray and then calling bytes() would copy twice; a large frame notices.)
        with memoryview(buffer) as view:
            checked = bytes(view[CRC_START:end])
        del buffer[: end + CHECKSUM_SIZE]  # cheap: bytearray drops a prefix without copying
        if end > SHRINK_AFTER:  # ...but keeps its memory: give a large frame's back
            self._buffer = bytearray(buffer)
        actual = zlib.crc32(checked)
        if actual != expected:
            raise ChecksumMismatch(expected, actual, offset=end)
        message = decode_payload(checked, catalogue, type_byte, start=6)
        return Frame(version, message, end + CHECKSUM_SIZE)

    def _large_frame(
        self, version: int, catalogue: Catalogue, type_byte: int, expected: int, end: int
    ) -> Frame:
        """A large frame alone in its buffer (received in place, :meth:`room`): checked and
        decoded where it lies. Its bytes are copied once, into the decoded ``bytes``
        fields, instead of twice: every copy of a large frame is a fresh allocation whose
        pages the kernel must fault in, and that, not the copying, is what costs (it was
        the coordinator's largest cost in W4, ``bench payload``)."""
        buffer, self._buffer = self._buffer, bytearray()
        with memoryview(buffer) as view, view[CRC_START:end] as checked:
            actual = zlib.crc32(checked)
            if actual != expected:
                raise ChecksumMismatch(expected, actual, offset=end)
            message = decode_payload(checked, catalogue, type_byte, start=6)  # type: ignore[arg-type]
        return Frame(version, message, end + CHECKSUM_SIZE)
