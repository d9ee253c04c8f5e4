"""Python values on the wire: the encoding of a task's arguments and of its result (v4).

The serialization lesson, continued. The frame's fields are declared once, with fixed
types (:mod:`vistrit.protocol.schema`); a function's arguments and result are not known
in advance, so each value says what it is: one *tag* byte, then what that kind needs.

=====  =========  =============================================================
tag    kind       then
=====  =========  =============================================================
0x00   ``None``   nothing
0x01   ``False``  nothing
0x02   ``True``   nothing
0x03   ``int``    8 bytes, i64 LE (two's complement)
0x04   ``int``    u32 LE length *n*, then *n* bytes, two's complement LE (any
                  size; used only when the value does not fit in an i64)
0x05   ``float``  8 bytes, IEEE 754 binary64 LE
0x06   ``str``    u32 LE byte length, then that much UTF-8
0x07   ``bytes``  u32 LE length, then the bytes
0x08   ``list``   u32 LE count, then each item
0x09   ``tuple``  u32 LE count, then each item
0x0A   ``dict``   u32 LE count, then each key followed by its value
=====  =========  =============================================================

A value fits in a frame (16 MiB), so lengths are u32, not the frames' u64. Subclasses are
sent as their base kind (an ``IntEnum`` arrives as an ``int``); ``bytearray`` and
``memoryview`` as ``bytes``. Anything else (a ``set``, a class instance, a function) is a
``TypeError`` naming it: this is deliberately **not pickle**. Unpickling runs code chosen
by whoever wrote the bytes; decoding these bytes can only ever build the eleven kinds above.

Decoding treats every byte as hostile: a tag it does not know, a length past the end, a
count that could not fit in the bytes left, invalid UTF-8, nesting deeper than
:data:`MAX_DEPTH`, a ``dict`` key that cannot be a key (a ``list``), a key given twice, and
bytes left over are each a :class:`~vistrit.protocol.errors.ProtocolError` saying where.

:func:`annotate_value` walks the same bytes and names each range, as the frame tables do
(the docs print one made by this code).

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.catalogue`.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from vistrit.protocol.errors import (
    BadLength,
    BadValue,
    InvalidUtf8,
    TrailingBytes,
    TruncatedPayload,
)
from vistrit.protocol.spans import Annotator, Span, field_path

#: How deep values may nest (a list in a list ... ): deeper is refused both ways, so a
#: cyclic value fails cleanly and a hostile one cannot exhaust the stack.
MAX_DEPTH = 64


class Tag(enum.IntEnum):
    """The first byte of every encoded value: what kind follows."""

    NONE = 0x00
    FALSE = 0x01
    TRUE = 0x02
    INT = 0x03
    BIGINT = 0x04
    FLOAT = 0x05
    STR = 0x06
    BYTES = 0x07
    LIST = 0x08
    TUPLE = 0x09
    DICT = 0x0A


_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

#: What the encoding can carry, for error messages.
KINDS = "None, bool, int, float, str, bytes, list, tuple and dict"


def encode_value(value: Any) -> bytes:
    """The bytes of *value*; a ``TypeError`` names a kind that cannot travel, a
    ``ValueError`` a value nested deeper than :data:`MAX_DEPTH` (or containing itself)."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"a value nested more than {MAX_DEPTH} deep (or containing itself)")
    if value is None:
        out.append(Tag.NONE)
    elif value is True or value is False:
        out.append(Tag.TRUE if value else Tag.FALSE)
    elif isinstance(value, int):
        if _I64_MIN <= value <= _I64_MAX:
            out.append(Tag.INT)
            out += _I64.pack(value)
        else:
            size = (value.bit_length() + 8) // 8  # room for the sign bit
            out.append(Tag.BIGINT)
            out += _U32.pack(size)
            out += int(value).to_bytes(size, "little", signed=True)
    elif isinstance(value, float):
        out.append(Tag.FLOAT)
        out += _F64.pack(value)
    elif isinstance(value, str):
        data = value.encode("utf-8")  # a lone surrogate is a UnicodeEncodeError (ValueError)
        out.append(Tag.STR)
        out += _U32.pack(len(data))
        out += data
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        out.append(Tag.BYTES)
        out += _U32.pack(len(data))
        out += data
    elif isinstance(value, (list, tuple)):
        out.append(Tag.TUPLE if isinstance(value, tuple) else Tag.LIST)
        out += _U32.pack(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out.append(Tag.DICT)
        out += _U32.pack(len(value))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise TypeError(f"cannot send a {type(value).__name__}: values are {KINDS}")


def decode_value(data: bytes) -> Any:
    """The value *data* holds, all of it; a ``ProtocolError`` says what is wrong, and where."""
    value, end = _Reader(bytes(data), None).read(0, 0, "")
    if end != len(data):
        raise TrailingBytes(f"{len(data) - end} byte(s) after the value", offset=end)
    return value


def annotate_value(data: bytes) -> list[Span]:
    """One span per byte range of an encoded value (its tags, lengths and contents)."""
    ann = Annotator(bytes(data))
    _Reader(bytes(data), ann).read(0, 0, "")
    return ann.spans


class _Reader:
    """Decodes one value (and, given an annotator, records a span per byte range)."""

    def __init__(self, buf: bytes, ann: Annotator | None) -> None:
        self.buf = buf
        self.ann = ann

    def note(self, pos: int, length: int, path: str, wire: str, shown: str) -> None:
        if self.ann is not None:
            self.ann.add(pos, length, path or "value", wire, shown)

    def take(self, pos: int, size: int, what: str) -> int:
        """Check that *size* bytes are left at *pos*; returns the position after them."""
        if pos + size > len(self.buf):
            raise TruncatedPayload(
                f"{what}: needs {size} byte(s) at offset {pos}, {len(self.buf) - pos} left",
                offset=pos,
            )
        return pos + size

    def length(self, pos: int, what: str, path: str, smallest_item: int = 1) -> tuple[int, int]:
        """A u32 length or count at *pos*, checked against the bytes left."""
        start = self.take(pos, 4, f"{what} length")
        (count,) = _U32.unpack_from(self.buf, pos)
        if count * smallest_item > len(self.buf) - start:
            raise BadLength(
                f"{what} of {count} needs at least {count * smallest_item} bytes, "
                f"only {len(self.buf) - start} left",
                offset=pos,
            )
        self.note(pos, 4, f"{path or 'value'} (len)", "u32", str(count))
        return count, start

    def read(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        """Read the value at *pos*; returns it and the position after it."""
        if depth > MAX_DEPTH:
            raise BadValue(f"values nest more than {MAX_DEPTH} deep", offset=pos)
        start = self.take(pos, 1, "value tag")
        try:
            tag = Tag(self.buf[pos])
        except ValueError:
            raise BadValue(f"unknown value tag 0x{self.buf[pos]:02x}", offset=pos) from None
        self.note(pos, 1, f"{path or 'value'} (tag)", "u8", f"0x{tag:02x} = {tag.name}")
        reader = _READERS[tag]
        return reader(self, start, depth, path or "value")

    def none(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        return {Tag.NONE: None, Tag.FALSE: False, Tag.TRUE: True}[Tag(self.buf[pos - 1])], pos

    def int64(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        end = self.take(pos, 8, "int")
        (value,) = _I64.unpack_from(self.buf, pos)
        self.note(pos, 8, path, "i64", str(value))
        return value, end

    def bigint(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        size, start = self.length(pos, "big int", path)
        value = int.from_bytes(self.buf[start : start + size], "little", signed=True)
        if _I64_MIN <= value <= _I64_MAX:
            raise BadValue("a big int that fits in an i64 (it has one encoding only)", offset=pos)
        self.note(start, size, path, "int", str(value) if size <= 32 else f"{size}-byte int")
        return value, start + size

    def float64(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        end = self.take(pos, 8, "float")
        (value,) = _F64.unpack_from(self.buf, pos)
        self.note(pos, 8, path, "f64", repr(value))
        return value, end

    def text(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        size, start = self.length(pos, "str", path)
        try:
            value = str(self.buf[start : start + size], "utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUtf8(f"str is not UTF-8: {exc.reason}", offset=start + exc.start) from None
        self.note(start, size, path, "UTF-8", repr(value) if size <= 40 else f"{size} bytes")
        return value, start + size

    def raw(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        size, start = self.length(pos, "bytes", path)
        value = self.buf[start : start + size]
        self.note(start, size, path, "bytes", repr(value) if size <= 16 else f"{size} bytes")
        return value, start + size

    def sequence(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        kind = Tag(self.buf[pos - 1])
        count, pos = self.length(pos, kind.name.lower(), path)
        items = []
        for index in range(count):
            item, pos = self.read(pos, depth + 1, f"{path}[{index}]")
            items.append(item)
        return (tuple(items) if kind == Tag.TUPLE else items), pos

    def mapping(self, pos: int, depth: int, path: str) -> tuple[Any, int]:
        count, pos = self.length(pos, "dict", path, smallest_item=2)
        result: dict[Any, Any] = {}
        for index in range(count):
            at = pos
            key, pos = self.read(pos, depth + 1, field_path(path, f"key {index}"))
            try:
                hash(key)
            except TypeError:
                raise BadValue(f"a dict key cannot be a {type(key).__name__}", offset=at) from None
            if key in result:
                raise BadValue(f"the dict key {_shown(key)} is given twice", offset=at)
            result[key], pos = self.read(pos, depth + 1, f"{path}[{_shown(key)}]")
        return result, pos


def _shown(key: Any) -> str:
    """A key as error messages and paths name it: short, whatever a hostile peer sent (a
    huge int has no ``repr`` past 4,300 digits)."""
    if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 64:
        return f"<{key.bit_length()}-bit int>"
    if isinstance(key, tuple):
        return "(" + ", ".join(_shown(k) for k in key[:4]) + (", ...)" if len(key) > 4 else ")")
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


_READERS = {
    Tag.NONE: _Reader.none,
    Tag.FALSE: _Reader.none,
    Tag.TRUE: _Reader.none,
    Tag.INT: _Reader.int64,
    Tag.BIGINT: _Reader.bigint,
    Tag.FLOAT: _Reader.float64,
    Tag.STR: _Reader.text,
    Tag.BYTES: _Reader.raw,
    Tag.LIST: _Reader.sequence,
    Tag.TUPLE: _Reader.sequence,
    Tag.DICT: _Reader.mapping,
}


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The ``arguments`` of a ``Call`` payload: the value ``(args, kwargs)``."""
    return encode_value((tuple(args), dict(kwargs)))


def decode_call(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` from a ``Call`` payload's ``arguments``; a ``ProtocolError`` if
    they are not a tuple and a dict with ``str`` keys."""
    value = decode_value(data)
    if not (isinstance(value, tuple) and len(value) == 2):
        raise BadValue("a call's arguments are a tuple (args, kwargs)", offset=0)
    args, kwargs = value
    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        raise BadValue("a call's arguments are a tuple (args, kwargs)", offset=0)
    if not all(isinstance(key, str) for key in kwargs):
        raise BadValue("keyword argument names are str", offset=0)
    return args, kwargs


__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "Tag",
    "annotate_value",
    "decode_call",
    "decode_value",
    "encode_call",
    "encode_value",
]
