"""Wire primitives: how each kind of value becomes payload bytes (PROTOCOL-v1.md §2).

Every wire type here can do three things with a value, and nothing else:

* ``encode(value, out)`` appends the value's bytes to the ``bytearray`` *out*;
* ``decode(buf, pos)`` reads one value from the payload *buf* at *pos* and returns
  ``(value, next_pos)``;
* ``annotate(ann, pos, path)`` walks the same bytes slowly, recording one
  :class:`~vistrit.protocol.spans.Span` per byte range (with its field path and decoded
  value) for the wire tracer and the docs.

The payload is little-endian throughout (the reference serializer's defaults: bincode 1.x);
lengths and counts are u64; there are no varints. Types of constant size (integers, bool,
unit enums, UUIDs) are :class:`Fixed`: they carry a :mod:`struct` format so that a message
can pack a whole run of them with one precompiled ``struct.Struct`` (see
:mod:`vistrit.protocol.schema`).

A decoder never trusts a length: a length or count is checked against the bytes that are
left *before* anything is allocated for it.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.schema`.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import struct
from typing import Any, ClassVar, NamedTuple

from vistrit.protocol.errors import (
    BadBool,
    BadEnumIndex,
    BadLength,
    BadOptionTag,
    BadValue,
    EncodeError,
    InvalidUtf8,
    ProtocolError,
)
from vistrit.protocol.gather import SPLICE_AT, Gather
from vistrit.protocol.sharing import shared_text, shared_uuid
from vistrit.protocol.spans import Annotator

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PORT = struct.Struct("<H")


class WireType:
    """Base of all wire types. ``name`` is the type as PROTOCOL-v1.md writes it."""

    name: str = "?"
    #: The fewest bytes a value can take; a count of N elements needs N * min_size bytes.
    min_size: int = 1

    def encode(self, value: Any, out: bytearray) -> None:
        """Append *value*'s bytes to *out*."""
        raise NotImplementedError

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read a value at *pos*; returns it and the position after it."""
        raise NotImplementedError

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Record the value's spans at *pos* (the byte table); returns the position after it."""
        raise NotImplementedError

    def describe(self, value: Any) -> str:
        """How a decoded value is shown in a byte table."""
        return repr(value)

    def __repr__(self) -> str:
        return f"<wire type {self.name}>"


class Fixed(WireType):
    """A value of constant size, packed with the struct format *fmt* (little-endian).

    ``arity`` is how many struct items the value takes. Subclasses whose Python value is not
    the struct item itself set ``converts`` and override :meth:`to_raw` / :meth:`from_raw`.
    """

    converts = False
    arity = 1

    def __init__(self, name: str, fmt: str) -> None:
        self.name = name
        self.fmt = fmt
        self.struct = struct.Struct("<" + fmt)
        self.size = self.min_size = self.struct.size

    def to_raw(self, value: Any) -> tuple[Any, ...]:
        """The value as the ``struct`` format takes it."""
        return (value,)

    def from_raw(self, *raw: Any) -> Any:
        """The value from what the ``struct`` format gives."""
        return raw[0]

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the value, packed with the type's ``struct`` format."""
        out += self.struct.pack(*self.to_raw(value))

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Unpack the value with the type's ``struct`` format."""
        raw = self.struct.unpack_from(buf, pos)
        return self.from_raw(*raw), pos + self.size

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the fixed-size value's bytes."""
        value, end = ann.read(self, pos, path)
        ann.add(pos, self.size, path, self.name, self.describe(value))
        return end


class Integer(Fixed):
    """u8, u16, u32, u64, i32, i64: fixed width, little-endian."""

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Unpack an integer."""
        return self.struct.unpack_from(buf, pos)[0], pos + self.size

    def describe(self, value: Any) -> str:
        """The integer as the byte table shows it."""
        return str(value)


class Timestamp(Integer):
    """An i64 count of Unix seconds (UTC); shown with its date in byte tables."""

    def __init__(self) -> None:
        super().__init__("i64", "q")

    def describe(self, value: Any) -> str:
        """The timestamp as the byte table shows it: seconds, and the date."""
        try:
            moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return f"{value} ({moment:%Y-%m-%d %H:%M:%S} UTC)"


class Bool(Fixed):
    """One byte, 00 or 01; any other byte is refused."""

    converts = True

    def __init__(self) -> None:
        super().__init__("bool", "B")

    def to_raw(self, value: Any) -> tuple[Any, ...]:
        """True as 1, False as 0."""
        if value is True or value is False:
            return (int(value),)
        raise EncodeError(f"bool expected, got {value!r}")

    def from_raw(self, *raw: Any) -> Any:
        """1 as True, 0 as False; any other byte is a ProtocolError."""
        if raw[0] > 1:
            raise BadBool(f"bool byte is 0x{raw[0]:02x}, expected 00 or 01")
        return raw[0] == 1

    def describe(self, value: Any) -> str:
        """The boolean as the byte table shows it."""
        return "true" if value else "false"


class Uuid(Fixed):
    """A UUID as bincode writes a 16-byte slice: u64 LE length (always 16), then the bytes.

    The bytes are in RFC (text) order, so ``uuid.UUID(bytes=...)`` reads them directly.
    *name* lets one declaration say NodeId and another TaskId; the bytes are the same.
    """

    converts = True
    arity = 2

    def __init__(self, name: str = "Uuid") -> None:
        super().__init__(name, "Q16s")

    def to_raw(self, value: Any) -> tuple[Any, ...]:
        """The UUID's 16 bytes."""
        return (16, value.bytes)

    def from_raw(self, *raw: Any) -> Any:
        """A UUID from its 16 bytes."""
        return self.from_pair(*raw)

    def from_pair(self, length: int, data: bytes) -> Any:
        """A UUID from its length prefix (which must be 16) and its 16 bytes."""
        if length != 16:
            raise BadValue(f"{self.name} length prefix is {length}, expected 16")
        return shared_uuid(data)

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Unpack a UUID (:meth:`Fixed.decode` without its generic conversion: a task's
        messages carry several ids each)."""
        length, data = self.struct.unpack_from(buf, pos)
        return self.from_pair(length, data), pos + 24

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the UUID's 16 bytes."""
        value, end = ann.read(self, pos, path)
        ann.add(pos, 8, f"{path} (len)", "u64", "16")
        ann.add(pos + 8, 16, path, self.name, str(value))
        return end


class UnitEnum(Fixed):
    """An enum whose variants carry no fields: just the u32 LE variant index.

    The Python side is an :class:`enum.IntEnum` whose values are the variant indexes.
    """

    converts = True

    def __init__(self, enum_class: type[enum.IntEnum]) -> None:
        super().__init__(enum_class.__name__, "I")
        self.enum_class = enum_class
        self.members = tuple(enum_class)
        if [m.value for m in self.members] != list(range(len(self.members))):
            raise TypeError(f"{enum_class.__name__}: values must be 0, 1, 2... in order")

    def to_raw(self, value: Any) -> tuple[Any, ...]:
        """The member's variant index."""
        if not isinstance(value, self.enum_class):
            raise EncodeError(f"{self.name} expected, got {value!r}")
        return (int(value),)  # (an IntEnum: int() is half the cost of .value)

    def from_raw(self, *raw: Any) -> Any:
        """The member of a variant index; a ProtocolError if there is none."""
        if raw[0] >= len(self.members):
            raise BadEnumIndex(
                f"{self.name} variant index {raw[0]} is unknown (0..{len(self.members) - 1})"
            )
        return self.members[raw[0]]

    def describe(self, value: Any) -> str:
        """The member's name, as the byte table shows it."""
        return f"{value.value} = {value.name}"


def _read_length(buf: bytes, pos: int, what: str, unit: int = 1) -> int:
    """Read a u64 length (or count of *unit*-byte items) and check it fits in the payload."""
    length: int = _U64.unpack_from(buf, pos)[0]
    left = len(buf) - pos - 8
    if length * unit > left:
        sign = " (negative as i64)" if length >= 1 << 63 else ""
        raise BadLength(
            f"{what} of {length}{sign} needs at least {length * unit} bytes, "
            f"only {left} left in the payload",
            offset=pos,
        )
    return length


class String(WireType):
    """u64 LE byte length, then that many bytes of UTF-8."""

    name = "String"
    min_size = 8

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the length (u64), then the UTF-8 bytes."""
        data = value.encode("utf-8")
        out += _U64.pack(len(data))
        out += data

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read the length, then that many bytes of valid UTF-8."""
        length = _U64.unpack_from(buf, pos)[0]
        start = pos + 8
        if start + length > len(buf):
            _read_length(buf, pos, "String length")  # raises, saying how much is missing
        try:
            text = str(buf[start : start + length], "utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUtf8(
                f"String is not UTF-8: {exc.reason} at byte {exc.start} of {length}",
                offset=start + exc.start,
            ) from None
        return shared_text(text), start + length

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the length and the text."""
        value, end = ann.read(self, pos, path)
        ann.add(pos, 8, f"{path} (len)", "u64", str(end - pos - 8))
        ann.add(pos + 8, end - pos - 8, path, "UTF-8", self.describe(value))
        return end

    def describe(self, value: Any) -> str:
        """The text as the byte table shows it (shortened if long)."""
        return _shorten(repr(value))


class Bytes(WireType):
    """``Vec<u8>``: u64 LE length, then the raw bytes."""

    name = "Vec<u8>"
    min_size = 8

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the length (u64), then the bytes (a large ``bytes`` spliced into a
        :class:`~vistrit.protocol.gather.Gather` rather than copied)."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"bytes expected, got {type(value).__name__}")
        out += _U64.pack(len(value))
        if len(value) >= SPLICE_AT and type(out) is Gather and type(value) is bytes:
            out.splice(value)
        else:
            out += value

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read the length, then that many bytes."""
        length = _U64.unpack_from(buf, pos)[0]
        start = pos + 8
        if start + length > len(buf):
            _read_length(buf, pos, "Vec<u8> length")  # raises, saying how much is missing
        data = buf[start : start + length]
        return (data if type(data) is bytes else bytes(data)), start + length  # a view: copy

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the length and the bytes."""
        value, end = ann.read(self, pos, path)
        ann.add(pos, 8, f"{path} (len)", "u64", str(len(value)))
        ann.add(pos + 8, len(value), path, "bytes", self.describe(value))
        return end

    def describe(self, value: Any) -> str:
        """The bytes as the byte table shows them (shortened if long)."""
        return _shorten(repr(bytes(value)))


class SocketAddr(NamedTuple):
    """An IP address (as text) and a port; ``str()`` gives ``127.0.0.1:7878``/``[::1]:7878``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class SocketAddrType(WireType):
    """u32 LE variant (0 = V4, 1 = V6), the address octets in network order, port u16 LE."""

    name = "SocketAddr"
    min_size = 4 + 4 + 2
    _SHAPES: ClassVar[dict[int, tuple[str, int, Any]]] = {
        0: ("V4", 4, ipaddress.IPv4Address),
        1: ("V6", 16, ipaddress.IPv6Address),
    }

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the address: its family, its IP bytes, its port."""
        try:
            address = ipaddress.ip_address(value.host)
        except ValueError as exc:
            raise EncodeError(f"SocketAddr needs an IP address: {exc}") from None
        out += _U32.pack(0 if address.version == 4 else 1)
        out += address.packed
        out += _PORT.pack(value.port)

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read an address: its family, its IP bytes, its port."""
        (variant,) = _U32.unpack_from(buf, pos)
        if variant not in self._SHAPES:
            raise BadEnumIndex(f"SocketAddr variant index {variant} is unknown (0 = V4, 1 = V6)")
        _, size, address_class = self._SHAPES[variant]
        start = pos + 4
        octets = bytes(buf[start : start + size])
        (port,) = _PORT.unpack_from(buf, start + size)  # also catches short octets
        return SocketAddr(str(address_class(octets)), port), start + size + 2

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the address's bytes."""
        value, end = ann.read(self, pos, path)
        variant = 0 if end - pos == 10 else 1
        kind, size, _ = self._SHAPES[variant]
        ann.add(pos, 4, f"{path} (variant)", "u32", f"{variant} = {kind}")
        ann.add(pos + 4, size, f"{path}.ip", f"{size} octets", value.host)
        ann.add(pos + 4 + size, 2, f"{path}.port", "u16", str(value.port))
        return end


class Option(WireType):
    """A u8 tag, 00 = None or 01 = Some, then (for Some) the value."""

    def __init__(self, inner: WireType) -> None:
        self.inner = inner
        self.name = f"Option<{inner.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        """Append 0 for None, or 1 then the value."""
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.encode(value, out)

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read the tag byte (0 or 1), then the value if present."""
        if pos >= len(buf):
            raise struct.error("Option tag beyond the end of the payload")
        tag = buf[pos]
        if tag == 0:
            return None, pos + 1
        if tag == 1:
            return self.inner.decode(buf, pos + 1)
        raise BadOptionTag(f"Option tag is 0x{tag:02x}, expected 00 or 01", offset=pos)

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the tag byte and the value."""
        if pos >= len(ann.buf):
            ann.read(self, pos, path)  # raises the truncation error, naming the field
        tag = ann.buf[pos]
        if tag == 0:
            ann.add(pos, 1, path, "Option tag", "None")
            return pos + 1
        if tag == 1:
            ann.add(pos, 1, f"{path} (tag)", "Option tag", "Some")
            return self.inner.annotate(ann, pos + 1, path)
        ann.read(self, pos, path)  # raises BadOptionTag, naming the field
        raise AssertionError("unreachable")


class Vec(WireType):
    """A u64 LE element count, then each element."""

    min_size = 8

    def __init__(self, inner: WireType) -> None:
        self.inner = inner
        self.name = f"Vec<{inner.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        """Append the count (u64), then each item."""
        if isinstance(value, (str, bytes)):
            raise EncodeError(f"{self.name} expected a sequence, got {type(value).__name__}")
        out += _U64.pack(len(value))
        encode = self.inner.encode
        for item in value:
            encode(item, out)

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read the count, then that many items."""
        if _U64.unpack_from(buf, pos)[0] == 0:  # most tags and dependencies: none at all
            return (), pos + 8
        count = _read_length(buf, pos, f"{self.name} count", self.inner.min_size)
        pos += 8
        items = []
        decode = self.inner.decode
        for _ in range(count):
            item, pos = decode(buf, pos)
            items.append(item)
        return tuple(items), pos

    def annotate(self, ann: Annotator, pos: int, path: str) -> int:
        """Describe the count and each item."""
        try:
            count = _read_length(ann.buf, pos, f"{self.name} count", self.inner.min_size)
        except (struct.error, ProtocolError):
            ann.read(self, pos, path)  # re-raises, naming the field
            raise
        ann.add(pos, 8, f"{path} (count)", "u64", str(count))
        pos += 8
        for index in range(count):
            pos = self.inner.annotate(ann, pos, f"{path}[{index}]")
        return pos


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The primitive types, one instance each. Declarations use the annotated aliases in schema.py.
U8 = Integer("u8", "B")
U16 = Integer("u16", "H")
U32 = Integer("u32", "I")
U64 = Integer("u64", "Q")
I32 = Integer("i32", "i")
I64 = Integer("i64", "q")
TIMESTAMP = Timestamp()
BOOL = Bool()
STRING = String()
BYTES = Bytes()
UUID = Uuid()
NODE_ID = Uuid("NodeId")
TASK_ID = Uuid("TaskId")
SOCKET_ADDR = SocketAddrType()
