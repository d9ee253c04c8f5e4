"""TLS around the same blocking sockets: optional, mutual, and thread-safe.

With ``--tls-cert``, ``--tls-key`` and ``--tls-ca`` on every node, every connection of a
cluster is TLS: each side shows a certificate signed by the cluster's CA and checks the
other's (mutual TLS), so the traffic is private and cannot be changed or taken over in
flight, and a node must hold a certificate as well as a credential.

How it fits the blocking design: :class:`TLSLayer` uses ``ssl.SSLObject`` over two
``ssl.MemoryBIO`` s, which is TLS without I/O, the sans-I/O idea again: the
:class:`~vistrit.transport.connection.Connection` reads raw bytes from its socket and
hands them in (:meth:`TLSLayer.decrypt`), and sends what :meth:`TLSLayer.encrypt` hands
back. Every call into the ``SSLObject`` takes one lock, so the reader thread and the
sending threads never use it at once (OpenSSL forbids that), and nothing else changes:
the same ``poll``, the same writer thread, the same timeouts.

A plaintext node that reaches a TLS port is told so in plain VistritProtocol (an
``Error``); a TLS node that reaches a plaintext port recognises the plain answer and says
so: neither sees only a broken connection.

Read next: :mod:`vistrit.transport.server`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vistrit.protocol.frame import MAGIC_BYTES

#: How many raw bytes one read takes from the socket during the handshake.
HANDSHAKE_READ = 16 * 1024


class TLSError(ConnectionError):
    """The TLS handshake failed; the message says why (a certificate, or no TLS at all)."""


@dataclass(frozen=True)
class TLSConfig:
    """A node's certificate and key, and the CA that signs every node's certificate."""

    cert: Path
    key: Path
    ca: Path

    def context(self, server_side: bool) -> ssl.SSLContext:
        """An ``SSLContext`` that shows this node's certificate and requires the peer's,
        signed by the CA (TLS 1.2 at least). Raises ``OSError`` or ``ssl.SSLError`` if a
        file is missing or wrong."""
        purpose = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
        context = ssl.SSLContext(purpose)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        context.load_verify_locations(cafile=self.ca)
        context.verify_mode = ssl.CERT_REQUIRED  # mutual: the server asks for the client's
        return context


class TLSLayer:
    """One connection's TLS session, without I/O (see the module docstring)."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, hostname: str | None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname
        )
        self._lock = threading.Lock()

    def handshake(self, sock: socket.socket, deadline: float) -> None:
        """Run the TLS handshake on *sock* (blocking, until *deadline*, ``time.monotonic``).
        Raises :class:`TLSError` saying why it failed."""
        received = b""
        while True:
            try:
                with self._lock:
                    self._ssl.do_handshake()
                self._flush(sock, deadline)
                return
            except ssl.SSLWantReadError:
                self._flush(sock, deadline)
                chunk = _read(sock, deadline)
                received += chunk[:16] if len(received) < 16 else b""
                if not chunk:
                    raise TLSError(_why_closed(received)) from None
                self._incoming.write(chunk)
            except ssl.SSLError as exc:
                self._flush_quietly(sock, deadline)  # the alert tells the peer why
                raise TLSError(_why_failed(exc, received)) from None

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """The records that carry *data*, to send as they are."""
        with self._lock:
            self._ssl.write(data)
            return self._outgoing.read()

    def decrypt(self, raw: bytes) -> bytes:
        """Hand in *raw* bytes from the socket; the plaintext they complete (maybe none)."""
        with self._lock:
            if raw:
                self._incoming.write(raw)
            plain = []
            while True:
                try:
                    plain.append(self._ssl.read(256 * 1024))
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:  # the peer closed the TLS session cleanly
                    break
            return b"".join(plain)

    def _flush(self, sock: socket.socket, deadline: float) -> None:
        data = self._outgoing.read()
        if data:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(data)

    def _flush_quietly(self, sock: socket.socket, deadline: float) -> None:
        try:
            self._flush(sock, deadline)
        except OSError:
            pass


def speaks_plain_vistrit(sock: socket.socket, timeout: float) -> bool:
    """Does the peer's first data look like a plain VistritProtocol frame (not TLS)?"""
    sock.settimeout(timeout)
    try:
        start = sock.recv(len(MAGIC_BYTES), socket.MSG_PEEK)
    except OSError:
        return False
    return start == MAGIC_BYTES


def _read(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TLSError("no TLS handshake in time")
    sock.settimeout(left)
    try:
        return sock.recv(HANDSHAKE_READ)
    except TimeoutError:
        raise TLSError("no TLS handshake in time") from None


def _why_closed(received: bytes) -> str:
    if received.startswith(MAGIC_BYTES):
        return "the coordinator does not speak TLS (it answered in plain VistritProtocol)"
    return "the peer closed the connection during the TLS handshake"


def _why_failed(exc: ssl.SSLError, received: bytes) -> str:
    if received.startswith(MAGIC_BYTES):
        return "the coordinator does not speak TLS (it answered in plain VistritProtocol)"
    return f"TLS handshake failed: {exc.reason or exc}"


__all__ = ["TLSConfig", "TLSError", "TLSLayer", "speaks_plain_vistrit"]
