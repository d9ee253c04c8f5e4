"""What the decoder shares instead of making anew: UUIDs seen lately, and short strings.

A fast path for memory, kept apart from :mod:`vistrit.protocol.wire` so that the wire
types stay plain. What it buys: a coordinator remembers every task for an hour, and each
task names the same few things as thousands of others (its client, its worker, its
function, its tags). Decoded plainly, each task carries its own copy of each: about 100
bytes for each id, and 119 bytes a task for its names (``docs/performance.rst``). The
values are ordinary, equal and hashable; nothing that reads them can tell.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.wire`.
"""

from __future__ import annotations

import sys
import uuid

#: Strings of at most this many characters are interned when decoded.
INTERN_CHARS = 64


def shared_text(text: str) -> str:
    """*text*, interned if it is short: one object for every task that names it (interned
    strings are freed when nothing holds them any more)."""
    return sys.intern(text) if len(text) <= INTERN_CHARS else text


#: The UUIDs decoded lately, by their bytes (see :func:`shared_uuid`); emptied when
#: it reaches this many, so it never holds more than a few hundred KiB.
RECENT_UUIDS = 4096
#: (An enum member looked up once: through its class it costs ten times as much.)
_UNKNOWN = uuid.SafeUUID.unknown

_recent: dict[bytes, uuid.UUID] = {}


def shared_uuid(data: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=data)`` for exactly 16 bytes, without its argument checks, and the
    same object for the same id seen lately.

    Decoding spends a fifth of its time on UUIDs; ``UUID.__init__`` validates five ways of
    being called. This sets the two slots it would set (``int`` and ``is_safe``), as
    ``UUID.__init__`` itself does. The result is an ordinary, equal and hashable UUID.
    A coordinator remembers each task with the ids of its client and its worker, the same
    few ids over and over: sharing one object for each saves about 100 bytes per id.
    """
    known = _recent.get(data)
    if known is not None:
        return known
    value = object.__new__(uuid.UUID)
    object.__setattr__(value, "int", int.from_bytes(data, "big"))
    object.__setattr__(value, "is_safe", _UNKNOWN)
    if len(_recent) >= RECENT_UUIDS:
        _recent.clear()
    _recent[data] = value
    return value


def forget_recent() -> None:
    """Empty the table of UUIDs decoded lately (as it empties itself when full). For
    measurements: the table growing is the decoder's own bounded memory, not a frame's."""
    _recent.clear()
