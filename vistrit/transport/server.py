"""The threaded server every coordinator (and the wire tracer) listens with.

:class:`FrameServer` is a ``socketserver.ThreadingTCPServer``: one thread per connection,
each running the node's ``on_connection(connection)`` with a
:class:`~vistrit.transport.connection.Connection`. It uses ``socketserver``'s hooks as
CPython intends: ``verify_request`` refuses a connection past ``max_connections`` (with
an ``Error`` saying so), ``shutdown_request`` forgets it, ``get_request`` pauses instead
of spinning when the process has no file descriptor left. It tracks its connections so
``stop()`` can close them and join every handler thread: nothing is left behind.
:func:`read_batches` is the loop a handler thread reads its connection with.

Read next: :mod:`vistrit.coordinator`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from vistrit.defaults import DEFAULT_LIMITS, Limits
from vistrit.protocol import ProtocolError, encode_frame
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.messages import Error, Message
from vistrit.transport.connection import Connection, ConnectionClosed, PeerTimeout
from vistrit.transport.tls import TLSConfig, TLSError, TLSLayer, speaks_plain_vistrit

log = logging.getLogger(__name__)


#: How long the accept loop pauses when the process is out of file descriptors.
ACCEPT_PAUSE = 0.1


def read_batches(
    conn: Connection, handle: Callable[[list[Message]], bool], idle: float | None
) -> None:
    """Hand each batch of messages (all that arrived together) to *handle*, until the peer
    closes the connection or *handle* says it is done: a handler thread's loop. A bad
    frame, a frame that stalls, or nothing at all for *idle* seconds gets an ``Error``
    (the caller closes the connection)."""
    try:
        while (message := conn.receive(time.monotonic() + idle if idle else None)) is not None:
            if not handle([message, *conn.buffered_messages()]):
                return
    except PeerTimeout as exc:
        conn.refuse(str(exc), ErrorCode.Protocol)
    except ProtocolError as exc:
        log.warning("%s sent a bad frame: %s", conn.name, exc)
        conn.refuse(exc)
    except ConnectionClosed:
        pass


def _open_file_limit() -> int:
    """The process's soft limit on open files."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Handler(socketserver.BaseRequestHandler):
    """One connection's thread: wraps the socket in a :class:`Connection` and runs the
    node's callback. A ``BaseRequestHandler``, not a ``StreamRequestHandler``: the
    connection reads and writes the socket itself, so no file objects are made (and
    ``Connection`` turns Nagle's algorithm off, for every connection, in one place)."""

    server: FrameServer

    def handle(self) -> None:
        name = f"conn {self.client_address[1]}"
        layer = self.server.secure(self.request, name) if self.server.tls is not None else None
        if self.server.tls is not None and layer is None:
            return  # refused: not TLS, or a certificate the CA did not sign
        connection = Connection(
            self.request, name=name, frame_timeout=self.server.frame_timeout, tls=layer
        )
        self.server.track(connection, add=True)
        try:
            self.server.on_connection(connection)
        except Exception:  # a thread boundary: log, drop this connection, keep serving
            log.exception("%s: handler failed", connection.name)
        finally:
            connection.close()
            self.server.track(connection, add=False)


class FrameServer(socketserver.ThreadingTCPServer):
    """A threaded TCP server whose handlers get a :class:`Connection`.

    For callers: ``start()`` serves in a background thread, ``stop()`` closes every
    connection and joins every thread. ``address`` is the bound address (useful with port 0).
    """

    allow_reuse_address = True  # restart on the same port without waiting for TIME_WAIT
    daemon_threads = False  # handler threads are joined on stop(), never abandoned
    block_on_close = True
    request_queue_size = 128  # pending connections while the accept loop is busy

    def __init__(
        self,
        address: tuple[str, int],
        on_connection: Callable[[Connection], Any],
        limits: Limits = DEFAULT_LIMITS,
        tls: TLSConfig | None = None,
    ):
        #: With *tls*, every connection is TLS, and mutual (see :mod:`vistrit.transport.tls`).
        self.tls = tls
        self._tls_context = tls.context(server_side=True) if tls is not None else None
        self.handshake_timeout = limits.handshake_timeout
        super().__init__(address, _Handler)
        self.on_connection = on_connection
        self.frame_timeout = limits.frame_timeout
        #: At most this many connections at once (and under half the open-file limit).
        self.max_connections = min(limits.max_connections, _open_file_limit() // 2)
        self._accepted: set[Any] = set()  # the sockets of the connections served now
        self._full_since = 0.0  # when accept() last failed for want of file descriptors
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def secure(self, sock: Any, name: str) -> TLSLayer | None:
        """The TLS handshake on a new connection (in its own thread). None, and the peer
        told why where it can be: a plaintext node is answered in plaintext."""
        assert self._tls_context is not None
        if speaks_plain_vistrit(sock, self.handshake_timeout):
            log.warning("%s: a node without TLS reached this TLS port; refused", name)
            refusal = Error(
                code=ErrorCode.Protocol,
                message="this coordinator speaks TLS: start the node with --tls-cert, "
                "--tls-key and --tls-ca",
            )
            with contextlib.suppress(OSError):
                sock.sendall(encode_frame(refusal))
            return None
        layer = TLSLayer(self._tls_context, True, None)
        try:
            layer.handshake(sock, time.monotonic() + self.handshake_timeout)
        except (TLSError, OSError) as exc:
            log.warning("%s: refused: %s", name, exc)
            return None
        return layer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """socketserver's hook, before a thread is started for a connection: past
        ``max_connections``, tell the peer why (an ``Error``) and close it at once."""
        with self._lock:
            if len(self._accepted) < self.max_connections:
                self._accepted.add(request)
                return True
        log.warning(
            "%d connections already: refusing one from %s", self.max_connections, client_address[0]
        )
        busy = Error(
            code=ErrorCode.Unavailable,
            message=f"too many connections ({self.max_connections}); try again later",
        )
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(encode_frame(busy))
        return False

    def shutdown_request(self, request: Any) -> None:
        """socketserver's hook, once a connection is done with (or refused)."""
        with self._lock:
            self._accepted.discard(request)
        super().shutdown_request(request)

    def get_request(self) -> tuple[Any, Any]:
        """socketserver's accept, which pauses when the process has no file descriptor
        left, instead of spinning: the listening socket stays readable until one frees."""
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                now = time.monotonic()
                if now - self._full_since > 10:
                    log.warning("cannot accept connections: %s; pausing", exc.strerror)
                self._full_since = now
                self._stopping.wait(ACCEPT_PAUSE)
            raise

    @property
    def address(self) -> tuple[str, int]:
        """The address the server is bound to (the real port, if bound to port 0)."""
        host, port = self.server_address[:2]
        return str(host), int(port)

    def track(self, connection: Connection, *, add: bool) -> None:
        """Add or remove a connection from those ``stop()`` closes. One added once the
        server is stopping (its thread started just before) is closed at once: ``stop()``
        may have looked already, and would otherwise wait for it for ever."""
        with self._lock:
            if add:
                self._connections.add(connection)
                if self._stopping.is_set():
                    connection.close()
            else:
                self._connections.discard(connection)

    def start(self, name: str = "accept") -> None:
        """Accept connections in a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, join every thread, release the port."""
        self._stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        self.server_close()  # joins the handler threads (block_on_close)
