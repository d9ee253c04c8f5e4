"""Annotation: every byte of a frame, with its field, wire type and value.

:func:`annotate_frame` returns one :class:`~vistrit.protocol.wire.Span` per byte range, in
order, covering every byte of the frame exactly once: the header, each payload field (down
to length prefixes, option tags and variant indexes), and the checksum. It checks the frame
as strictly as the decoder and raises the same errors; the error carries the spans read
before it (``exc.spans``), so a tracer can show how far a bad frame made sense.

:func:`format_table` lays the spans out as a protocol analyser would. The wire tracer, the
``decode`` command and the byte tables in the docs are all built on these two functions.

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.jsonform`.
"""

from __future__ import annotations

from collections.abc import Sequence

from vistrit.protocol.catalogue import CATALOGUES, V1
from vistrit.protocol.errors import ChecksumMismatch, ProtocolError, TrailingBytes, TruncatedPayload
from vistrit.protocol.frame import (
    _MESSAGE,
    CHECKSUM,
    CHECKSUM_SIZE,
    HEADER,
    HEADER_SIZE,
    MAX_PAYLOAD,
    check_crc,
    decode_payload,
    parse_header,
)
from vistrit.protocol.spans import Annotator, Span

__all__ = ["Span", "annotate_frame", "format_table"]


def annotate_frame(data: bytes, max_payload: int = MAX_PAYLOAD) -> list[Span]:
    """The spans of the one frame in *data*; raises a ``ProtocolError`` for a bad frame."""
    spans: list[Span] = []
    try:
        _annotate(bytes(data), max_payload, spans)
    except ProtocolError as exc:
        exc.spans = tuple(spans)
        raise
    return spans


def _annotate(data: bytes, max_payload: int, spans: list[Span]) -> None:
    if len(data) < HEADER_SIZE:
        raise TruncatedPayload(
            f"{len(data)} bytes are shorter than the {HEADER_SIZE}-byte header", offset=len(data)
        )
    header = data[:HEADER_SIZE]
    _, version, type_byte, length = HEADER.unpack(header)
    known = CATALOGUES.get(version, V1).by_type_byte.get(type_byte)
    spans += [
        Span(0, 4, "magic", "u32 BE", repr(data[:4].decode("latin-1"))),
        Span(4, 1, "version", "u8", str(version)),
        Span(5, 1, "type", "u8", f"0x{type_byte:02x} = {known.WIRE_NAME if known else '?'}"),
        Span(6, 4, "length", "u32 BE", f"{length} (payload bytes)"),
    ]
    catalogue, _, _ = parse_header(header, max_payload)  # the precise error, if any
    end = HEADER_SIZE + length
    if len(data) < end + CHECKSUM_SIZE:
        raise TruncatedPayload(
            f"the frame is {len(data)} bytes, its header announces {end + CHECKSUM_SIZE}",
            offset=len(data),
        )
    payload = data[HEADER_SIZE:end]
    trailer = data[end : end + CHECKSUM_SIZE]
    try:
        check_crc(header, payload, trailer)
        crc_error = None
    except ChecksumMismatch as exc:
        crc_error = exc
    annotator = Annotator(payload, base=HEADER_SIZE)
    payload_error: ProtocolError | None = None
    try:
        _MESSAGE.annotate(annotator, 0, "")
        decode_payload(payload, catalogue, type_byte)  # type byte, leftovers: as the decoder
    except ProtocolError as exc:
        payload_error = exc
    spans += annotator.spans
    (expected,) = CHECKSUM.unpack(trailer)
    verdict = "ok" if crc_error is None else f"computed 0x{crc_error.actual:08x}: MISMATCH"
    spans.append(Span(end, CHECKSUM_SIZE, "checksum", "u32 BE", f"0x{expected:08x} ({verdict})"))
    if crc_error is not None:  # the decoder checks the checksum first, so it reports it first
        raise crc_error
    if payload_error is not None:
        raise payload_error
    if len(data) > end + CHECKSUM_SIZE:
        raise TrailingBytes(
            f"{len(data) - end - CHECKSUM_SIZE} byte(s) after the frame", offset=end + CHECKSUM_SIZE
        )


def format_table(spans: Sequence[Span], data: bytes, max_bytes: int = 8) -> str:
    """The spans as a text table: offset, length, bytes, field, wire type, value.

    Long byte ranges show their first *max_bytes* bytes and an ellipsis.
    """
    rows = [("offset", "len", "bytes", "field", "type", "value")]
    for span in spans:
        chunk = data[span.offset : span.offset + min(span.length, max_bytes)]
        shown = chunk.hex(" ") + (" …" if span.length > max_bytes else "")
        rows.append(
            (str(span.offset), str(span.length), shown, span.field, span.wire_type, span.value)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [
            row[0].rjust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
            row[4].ljust(widths[4]),
            row[5],
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
