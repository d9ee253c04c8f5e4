"""How a connection's threads wait on its socket: for bytes to read, and for room to write.

A :class:`~vistrit.transport.connection.Connection`'s socket is blocking and has no
timeout of Python's own: with one, CPython makes a ``poll`` before every ``recv`` and
every ``send``, two more system calls for each message. Sends never wait (they are made
with ``MSG_DONTWAIT``); what does wait is here.

**Reading.** A reader usually waits without end (a client's or a worker's session) or
for a minute (a coordinator's idle timeout). Such a wait is left to the ``recv`` itself:
the socket blocks, and the kernel ends the ``recv`` after ``SO_RCVTIMEO``, set to the
wait rounded down to whole seconds. A ``recv`` that ends early leaves the caller's loop
to wait the rest, so a wait is never longer than asked. The bound is set (a system call)
only when the wait's whole seconds change: a coordinator's reader sets it about once a
minute, a session's reader once. What it saves is a ``poll`` before every ``recv``: a
system call, and a release and re-take of the interpreter lock, for every batch of
messages a node reads (``docs/performance.rst``, "What changed on 2026-11-30"). A wait
under a second is a ``poll`` of its own. ``Connection.close()`` wakes either: it shuts
the socket down.

**Writing.** A sender that finds the socket full waits for room with a ``poll``.

This module never touches frames, threads or logging. Read next:
:mod:`vistrit.transport.server`.
"""

from __future__ import annotations

import select
import socket
import struct

#: The longest the kernel is asked to bound one ``recv``, in seconds (a day): a longer
#: wait, or an endless one given as a number, is several ``recv`` s in turn.
LONGEST_BOUND = 86_400


def timeval(seconds: int) -> bytes:
    """A ``struct timeval`` of whole *seconds*, as ``SO_RCVTIMEO`` takes it."""
    return struct.pack("@ll", seconds, 0)


class SocketWaits:
    """The waits of one connected, blocking socket (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._readable = select.poll()
        self._readable.register(sock, select.POLLIN)
        self._writable = select.poll()
        self._writable.register(sock, select.POLLOUT)
        self.recv_bound = 0  # SO_RCVTIMEO in whole seconds; 0: none

    def before_recv(self, wait: float | None) -> bool:
        """Get ready for a ``recv`` that waits at most *wait* seconds (``None``: as long as
        it takes). False if *wait* passed first. A ``recv`` that the bound ends raises
        ``BlockingIOError``: that wait passed."""
        if wait is not None and wait < 1.0:
            return bool(self._readable.poll(max(0.0, wait) * 1000))
        bound = 0 if wait is None else int(min(wait, LONGEST_BOUND))
        if bound != self.recv_bound:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(bound))
            self.recv_bound = bound
        return True

    def for_room(self, seconds: float) -> None:
        """Wait at most *seconds* for room to write."""
        self._writable.poll(seconds * 1000)


__all__ = ["LONGEST_BOUND", "SocketWaits", "timeval"]
