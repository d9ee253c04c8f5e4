"""Values encoded once: a task or a result that was decoded from a frame keeps the bytes it
was read from, and is written again from them.

A fast path for the coordinator's CPU, kept apart from :mod:`vistrit.protocol.schema` so
that the codec stays plain. What it buys: a coordinator passes every task on unchanged,
decoded from its client's ``TaskSubmit`` and encoded again in the ``TaskAssign`` to its
worker, and every result the same way, from its worker's ``TaskResultMessage`` to its
client's ``TaskOutcome``; a leader encodes both once more, in its journal records. Written
from their bytes instead, a W1 task costs the coordinator about a tenth fewer
instructions (``docs/performance.rst``).

Why the bytes are the same: the decoder is strict. It refuses a bool byte other than 0
or 1, an Option tag other than 0 or 1, a UUID length other than 16, an unknown variant,
text that is not UTF-8; so a value decoded from some bytes encodes to exactly those
bytes, and the values are frozen, so they cannot have changed since (the test suite
checks this for every message). The bytes live in a slot of the value's own, which is no
dataclass field: equality, ``repr`` and hashing ignore it, and a value made anew - by
``__init__``, ``dataclasses.replace``, a copy - has none and is encoded field by field;
a value of another type where this one belongs is refused, bytes or not, as before.

What it costs: the bytes, as long as the value lives, and only for values of at most
:data:`MAX_BYTES` (a large payload is never copied for this). A coordinator holds a task
so from its submission until it is finished and packed (:mod:`vistrit.logic.packed`),
about 200 more bytes for a queued 16-byte echo task. Only a process that passes values
on turns it on (:func:`enable`: a coordinator does); a worker or a client would keep bytes
it never writes again.

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.gather`.
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar

from vistrit.protocol.schema import StructCodec, WireValue, declare_struct

#: The largest encoding kept, in bytes: a task or result with a larger input or output is
#: encoded anew each time (its bytes are not worth a second copy).
MAX_BYTES = 4096

T = TypeVar("T")

_enabled = False


def enable(on: bool = True) -> None:
    """Keep the bytes of what is decoded from now on (or, with *on* False, no longer)."""
    global _enabled
    _enabled = on


class RememberedValue(WireValue):
    """Base of a struct declared with :func:`remembered_struct`: the slot for its bytes."""

    __slots__ = ("_wire_bytes",)


_keep = RememberedValue._wire_bytes.__set__  # type: ignore[attr-defined]


def wire_bytes(value: RememberedValue) -> bytes | None:
    """The bytes *value* was decoded from, if it keeps them."""
    kept: bytes | None = getattr(value, "_wire_bytes", None)
    return kept


class RememberingCodec(StructCodec):
    """A struct's codec whose decoded values keep their bytes, written again when the same
    value is encoded (see the module docstring)."""

    def decode(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """:meth:`StructCodec.decode`, and the value's bytes kept in it."""
        value, end = StructCodec.decode(self, buf, pos)
        if _enabled and end - pos <= MAX_BYTES:
            data = buf[pos:end]  # a copy (of a large frame's view as well: bytes() below)
            _keep(value, data if type(data) is bytes else bytes(data))
        return value, end

    def encode(self, value: Any, out: bytearray) -> None:
        """The bytes *value* was decoded from, if it keeps them; else
        :meth:`StructCodec.encode`."""
        kept = getattr(value, "_wire_bytes", None)
        if kept is not None and type(value) is self.cls:  # (another type: refused below)
            out += kept
            return
        StructCodec.encode(self, value, out)


# dataclass_transform tells type checkers what the decorator makes (see wire_struct).
@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def remembered_struct(cls: type[T]) -> type[T]:
    """Declare a struct as :func:`~vistrit.protocol.schema.wire_struct` does, whose decoded
    values are written again from their bytes. The class derives from
    :class:`RememberedValue`."""
    if not issubclass(cls, RememberedValue):
        raise TypeError(f"{cls.__name__} must derive from RememberedValue")
    return declare_struct(cls, None, None, RememberingCodec)


__all__ = [
    "MAX_BYTES",
    "RememberedValue",
    "RememberingCodec",
    "enable",
    "remembered_struct",
    "wire_bytes",
]
