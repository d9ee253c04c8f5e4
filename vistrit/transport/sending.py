"""What a connection has to send, as a list of pieces, and how the pieces go out.

A connection's bytes to send are a list of *pieces* (``bytes`` or views), in order: the
parts of a :class:`~vistrit.protocol.gather.Gather` of encoded frames and the large fields
spliced into it, or the rest of a send the socket took only part of. They go out together
in one ``sendmsg`` (the socket gathers them; nothing joins them first), and a partial send
moves the list on by the bytes the socket took (:func:`advance`), copying nothing.

This module never touches locks, clocks or logging. Read next:
:mod:`vistrit.transport.server`.
"""

from __future__ import annotations

import socket

#: A piece of what is to be sent.
Piece = bytes | bytearray | memoryview

#: At most this many pieces go to one system call (the kernel's own limit is 1,024).
MAX_PIECES = 64


class OnTheWire:
    """Bytes ready for the socket (already encrypted), sent as they are: the rest of a
    partial send, kept as the pieces it was (copying 8 MiB costs more than sending it)."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = pieces


def advance(pieces: list[Piece], count: int) -> list[Piece]:
    """*pieces* without their first *count* bytes (which were sent)."""
    done = 0
    while done < len(pieces) and count >= len(pieces[done]):
        count -= len(pieces[done])
        done += 1
    rest = pieces[done:]
    if count:
        rest[0] = memoryview(rest[0])[count:]
    return rest


def send_pieces(sock: socket.socket, pieces: list[Piece]) -> int:
    """Send what the socket takes now of *pieces* (at most :data:`MAX_PIECES` of them),
    in one ``sendmsg``, without waiting: the number of bytes taken. Raises what the socket
    raises (``BlockingIOError`` when it takes nothing)."""
    return sock.sendmsg(pieces[:MAX_PIECES], (), socket.MSG_DONTWAIT)


__all__ = ["MAX_PIECES", "OnTheWire", "Piece", "advance", "send_pieces"]
