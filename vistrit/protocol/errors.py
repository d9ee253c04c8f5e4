"""What can go wrong with bytes on the wire, and whose fault it is.

Two families, as in h11: a :class:`ProtocolError` means the *remote peer* sent bytes that
break VistritProtocol (bad magic, a checksum mismatch, a string that is not UTF-8...); an
:class:`EncodeError` means *this program* asked to encode something that cannot be encoded
(a ``u8`` of 300, a frame over the size cap). A receiver answers a ``ProtocolError`` with an
``Error`` frame carrying :attr:`ProtocolError.code` and closes the connection; an
``EncodeError`` is a bug to fix locally and never reaches the wire.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.frame`.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.IntEnum):
    """The ``ErrorCode`` enum of PROTOCOL-v1.md §3; the value is the wire variant index.

    The reference source also gives each code a display number (100, 200, ...); those never
    reach the wire, so they are not modelled here.
    """

    Unknown = 0
    Protocol = 1
    AuthFailed = 2
    PermissionDenied = 3
    NotFound = 4
    TaskNotFound = 5
    WorkerNotFound = 6
    InvalidRequest = 7
    Internal = 8
    Unavailable = 9


class EncodeError(ValueError):
    """A local misuse: the value given cannot be encoded (out of range, wrong type, too big)."""


class ProtocolError(Exception):
    """The remote peer broke the protocol. ``code`` is what an ``Error`` reply should carry.

    ``offset`` is the position in the frame (or payload, see the subclass) where the problem
    was found, when one is known.
    """

    code: ErrorCode = ErrorCode.Protocol
    #: Set by :func:`~vistrit.protocol.annotate.annotate_frame`: the spans read before the
    #: error, so a tracer can show how far a bad frame made sense.
    spans: tuple[Any, ...] = ()

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


# -- frame-level errors (the 10-byte header and the 4-byte checksum) -------------------------


class BadMagic(ProtocolError):
    """The first four bytes are not ``VIST``: this is not a VistritProtocol frame at all."""


class UnsupportedVersion(ProtocolError):
    """The header's version byte names no catalogue this receiver knows."""


class UnknownMessageType(ProtocolError):
    """The header's type byte names no message of the frame's version."""

    code = ErrorCode.InvalidRequest


class TypeByteMismatch(ProtocolError):
    """The header's type byte and the payload's variant index name different messages.

    The reference receiver ignores the type byte; Vistrit's receivers insist they agree.
    """


class FrameTooLarge(ProtocolError):
    """The header announces a payload over the cap; refused before any of it is buffered."""


class ChecksumMismatch(ProtocolError):
    """The CRC-32 in the trailer differs from the one computed over version..payload."""

    def __init__(self, expected: int, actual: int, *, offset: int | None = None) -> None:
        # Wording as the reference coordinator's: "expected" is the trailer's value.
        super().__init__(
            f"Checksum mismatch: expected 0x{expected:08x}, got 0x{actual:08x}", offset=offset
        )
        self.expected = expected
        self.actual = actual


# -- payload-level errors (offsets count from the first payload byte) ------------------------


class TruncatedPayload(ProtocolError):
    """The payload ends before the message does."""


class TrailingBytes(ProtocolError):
    """The message ends before the payload does: bytes are left over."""


class InvalidUtf8(ProtocolError):
    """A ``String`` holds bytes that are not UTF-8."""


class BadEnumIndex(ProtocolError):
    """An enum's u32 variant index names no variant."""


class BadOptionTag(ProtocolError):
    """An ``Option`` tag byte is neither 0 (None) nor 1 (Some)."""


class BadBool(ProtocolError):
    """A ``bool`` byte is neither 0 nor 1."""


class BadLength(ProtocolError):
    """A length or count inside the payload is negative (as i64) or more than the bytes left."""


class BadValue(ProtocolError):
    """A value has the right size but an impossible content (a UUID whose length is not 16)."""
