"""Spans: which bytes of a payload hold which field, for the byte tables and the tracer.

Each wire type can *annotate* a value's bytes as well as encode and decode them: it walks
the same bytes and records a :class:`Span` per byte range, with the field's dotted path
(:func:`field_path`), its wire type and its decoded value. An :class:`Annotator` collects
them; :mod:`vistrit.protocol.annotate` turns them into the byte tables that
``vistrit decode``, the wire tracer and these docs print.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.schema`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol

from vistrit.protocol.errors import ProtocolError, TruncatedPayload


class Decodes(Protocol):
    """A wire type, as the annotator uses it: its name, and how it decodes."""

    name: str

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Read a value at *pos*; returns it and the position after it."""
        ...


@dataclass(frozen=True, slots=True)
class Span:
    """One byte range of a frame: where it is, which field it holds, and what it says."""

    offset: int
    length: int
    field: str
    wire_type: str
    value: str


class Annotator:
    """Collects the :class:`Span` list of one payload while a wire type walks it.

    *buf* is the payload alone; *base* is where the payload starts in the frame, so that
    span offsets are frame offsets.
    """

    def __init__(self, buf: bytes, base: int = 0) -> None:
        self.buf = buf
        self.base = base
        self.spans: list[Span] = []

    def add(self, pos: int, length: int, field: str, wire_type: str, value: str) -> None:
        """Record that *length* bytes at *pos* hold *field* (a *wire_type*), shown as *value*."""
        if length:  # an empty string has a length prefix but no bytes of its own
            self.spans.append(Span(self.base + pos, length, field, wire_type, value))

    def read(self, wire: Decodes, pos: int, field: str) -> tuple[Any, int]:
        """Decode one value for annotation; errors name the field they happened in."""
        try:
            return wire.decode(self.buf, pos)
        except struct.error:
            left = len(self.buf) - pos
            raise TruncatedPayload(
                f"{field}: the payload ends inside this {wire.name} "
                f"(payload offset {pos}, {left} byte(s) left)",
                offset=pos,
            ) from None
        except ProtocolError as exc:
            raise type(exc)(f"{field}: {exc}", offset=exc.offset) from None


def field_path(parent: str, name: str) -> str:
    """A dotted path for a nested field, as the byte table names it."""
    return f"{parent}.{name}" if parent else name


__all__ = ["Annotator", "Decodes", "Span", "field_path"]
