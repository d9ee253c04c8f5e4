"""Frames whose large byte strings are sent from where they lie, not copied into the frame.

A frame is encoded by appending its fields, one after another, to a ``bytearray``
(:func:`~vistrit.protocol.frame.encode_frame_into`). For a task of 8 MiB that means
copying the 8 MiB into the frame's buffer, a fresh allocation whose pages the kernel must
fault in, only for the socket to copy them once more. A :class:`Gather` is that
``bytearray``, with a list of the large ``bytes`` fields *spliced* in at their places
instead: the buffer holds everything else (the header, the other fields, each large
field's length), and the socket is handed the pieces in order, in one ``sendmsg``
(:mod:`vistrit.transport.sending`). The bytes on the wire are the same, byte for byte.

What it buys (``bench payload``, ``docs/performance.rst``): on its way through the
coordinator an 8 MiB echo call is copied into a frame twice less (the assignment and the
outcome), once less out of the client, and twice less out of the worker.

Only an immutable ``bytes`` of :data:`SPLICE_AT` bytes or more is spliced: a ``bytearray``
might be changed by its owner before the frame is sent, and a small field costs more as a
piece of its own than as a copy. The checksum still covers every byte: it is computed
piece by piece, over the buffer's parts and the spliced fields in turn.

This module never touches sockets, clocks or logging. Read next:
:mod:`vistrit.protocol.annotate`.
"""

from __future__ import annotations

import zlib

#: A ``bytes`` field this large or larger is spliced rather than copied.
SPLICE_AT = 256 * 1024


class Gather(bytearray):
    """A ``bytearray`` of encoded frames, with large ``bytes`` fields spliced in (see the
    module docstring). Everything a ``bytearray`` does applies to the bytes it holds
    itself; :meth:`pieces` is the whole, in order."""

    #: (offset in this buffer where it belongs, the field's bytes), in order. The class's
    #: empty tuple until the first splice: a connection makes a Gather for every batch it
    #: sends, and most never splice, so it has no ``__init__`` of its own to run.
    spliced: list[tuple[int, bytes]] | tuple[()] = ()

    def splice(self, data: bytes) -> None:
        """*data* goes here, after everything appended so far, without being copied."""
        self.spliced = [*self.spliced, (len(self), data)]

    def spliced_size(self, start: int = 0) -> int:
        """How many bytes are spliced in from offset *start* on."""
        return sum(len(data) for at, data in self.spliced if at >= start)

    def truncate(self, start: int) -> None:
        """Drop everything from offset *start* on, spliced fields included."""
        del self[start:]
        self.spliced = [(at, data) for at, data in self.spliced if at < start]

    def crc32(self, start: int) -> int:
        """The CRC-32 of everything from offset *start* on, spliced fields in their places."""
        crc = 0
        with memoryview(self) as view:
            for at, data in self.spliced:
                if at >= start:
                    crc = zlib.crc32(data, zlib.crc32(view[start:at], crc))
                    start = at
            return zlib.crc32(view[start:], crc)

    def extend_gather(self, other: Gather) -> None:
        """Append *other*, its spliced fields still not copied."""
        base = len(self)
        self += other
        if other.spliced:
            self.spliced = [*self.spliced, *((base + at, data) for at, data in other.spliced)]

    def pieces(self) -> list[bytes | bytearray | memoryview]:
        """The whole, in order: parts of this buffer between the spliced fields, and the
        fields themselves. (Views of the buffer: do not change it while they are in use.)"""
        if not self.spliced:
            return [memoryview(self)]
        view = memoryview(self)
        out: list[bytes | bytearray | memoryview] = []
        start = 0
        for at, data in self.spliced:
            if at > start:
                out.append(view[start:at])
            out.append(data)
            start = at
        if start < len(self):
            out.append(view[start:])
        return out


__all__ = ["SPLICE_AT", "Gather"]
