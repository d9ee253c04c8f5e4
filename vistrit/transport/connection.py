"""A framed, blocking TCP connection: how every Vistrit node sends and receives frames.

A :class:`Connection` wraps one connected socket:

* :meth:`Connection.send` encodes messages and writes them under a per-connection lock,
  so several threads may send on one connection; each frame goes out whole.
* :meth:`Connection.receive` is for one reader thread. It reads in large chunks
  (``RECV_SIZE``; many frames per ``recv``) into a :class:`~vistrit.protocol.FrameDecoder`
  and returns one message at a time. It gives up with :class:`PeerTimeout` when a frame
  the peer started is not finished within ``frame_timeout``, or when the caller's deadline
  passes, and returns ``None`` when the peer closes the connection cleanly.
* :meth:`Connection.close` is safe from any thread and wakes a blocked reader.

Until the peer has proved who it is, a frame's payload may be at most
``HANDSHAKE_MAX_PAYLOAD`` (64 KiB); :meth:`Connection.lift_frame_cap` raises it to the
protocol's 16 MiB. Once two nodes agree on a version (:meth:`Connection.agree`), a frame of
a newer version is a protocol error.

Every blocking call has a timeout: connects (``CONNECT_TIMEOUT``), sends (``SEND_TIMEOUT``)
and reads (the reader's deadlines). Once connected, Python's socket has none (it would
``poll`` before every ``recv`` and ``send``): a send never waits (``MSG_DONTWAIT``), and a
reader waits in the ``recv`` itself, bounded by the kernel (:mod:`vistrit.transport.waits`).

Read next: :mod:`vistrit.transport.sending`.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence

from vistrit import defaults
from vistrit.protocol import MAX_PAYLOAD, Frame, FrameDecoder, Message, ProtocolError
from vistrit.protocol.catalogue import frame_version
from vistrit.protocol.errors import ErrorCode, UnsupportedVersion
from vistrit.protocol.frame import VERSION_OFFSET, encode_frame_into
from vistrit.protocol.gather import Gather
from vistrit.protocol.messages import Error
from vistrit.transport.sending import OnTheWire, Piece, advance, send_pieces
from vistrit.transport.tls import TLSConfig, TLSLayer
from vistrit.transport.waits import SocketWaits

log = logging.getLogger(__name__)


class ConnectionClosed(ConnectionError):
    """The connection is closed, or the peer closed it in the middle of a frame."""


class PeerTimeout(TimeoutError):
    """The peer did not send what was expected in time."""


def resolve(host: str) -> str:
    """The IPv4 address of *host* (an address is returned as it is): what a node announces
    to others must be an IP address on the wire. Raises ``OSError`` if it has none."""
    return socket.gethostbyname(host)


def connect(
    address: tuple[str, int],
    *,
    timeout: float = defaults.CONNECT_TIMEOUT,
    name: str = "",
    tls: TLSConfig | None = None,
) -> Connection:
    """Open a TCP connection (TLS if *tls* is given), failing with ``OSError`` after
    *timeout* seconds (:class:`~vistrit.transport.tls.TLSError` if TLS fails)."""
    sock = socket.create_connection(address, timeout=timeout)
    layer = None
    if tls is not None:
        layer = TLSLayer(tls.context(server_side=False), False, address[0])
        try:
            layer.handshake(sock, time.monotonic() + timeout)
        except BaseException:
            sock.close()
            raise
    return Connection(sock, name=name or f"{address[0]}:{address[1]}", tls=layer)


#: What a connection's writer queue holds: messages, encoded frames (``bytes``, or a
#: :class:`~vistrit.protocol.gather.Gather` with large fields spliced in), or the rest of a
#: send.
Outgoing = Message | bytes | Gather | OnTheWire


class Connection:
    """One framed, blocking TCP connection (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        name: str,
        send_timeout: float = defaults.SEND_TIMEOUT,
        frame_timeout: float = defaults.FRAME_TIMEOUT,
        max_payload: int = defaults.HANDSHAKE_MAX_PAYLOAD,
        tls: TLSLayer | None = None,
    ) -> None:
        self.name = name
        self.version = 1  # frames are sent in this version; raised after the handshake
        self.agreed = False  # once True, a frame newer than ``version`` is refused
        self._refused: ProtocolError | None = None  # a bad frame, for the next receive
        self.frame_timeout = frame_timeout
        self.send_timeout = send_timeout
        self._sock = sock
        # Blocking, with no timeout of Python's own: every wait is bounded here (waits.py).
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = FrameDecoder(max_payload)  # small until the peer is trusted
        self._tls = tls
        # A Condition is a lock that can also be waited on: flush() waits for the writer.
        self._send_lock = threading.Condition()
        self._outgoing: queue.SimpleQueue[Sequence[Outgoing] | None] | None = None
        self._writer: threading.Thread | None = None
        self._queued = 0  # batches queued for the writer and not yet sent
        self._waits = SocketWaits(sock)
        self._closed = threading.Event()
        self.last_frame: Frame | None = None
        try:
            self.peer = "{}:{}".format(*sock.getpeername()[:2])
            self.local: tuple[str, int] = tuple(sock.getsockname()[:2])
        except OSError:
            self.peer, self.local = "?", ("0.0.0.0", 0)

    def lift_frame_cap(self) -> None:
        """The peer proved who it is: accept frames up to the protocol's cap (16 MiB)."""
        self._decoder.max_payload = MAX_PAYLOAD

    def agree(self, version: int) -> None:
        """The version agreed with the peer: frames are sent in it, and a frame of a newer
        version from the peer is a protocol error from now on."""
        self.version = version
        self.agreed = True

    @property
    def closed(self) -> bool:
        """True once the connection is closed, by either side."""
        return self._closed.is_set()

    def send(self, *messages: Message) -> None:
        """Send messages, in order, as one write. Raises ``ConnectionClosed`` if it cannot."""
        self.send_many(messages)

    def send_many(self, messages: Iterable[Message | bytes | Gather]) -> None:
        """Send messages (or frames already encoded, as ``bytes`` or a ``Gather``) in
        order, as one write.

        Before :meth:`start_writer`: blocks until sent (at most ``send_timeout``). After it,
        every send is a :meth:`post`, so that nothing can overtake what is queued.
        """
        if self._outgoing is not None:
            if self._closed.is_set():
                raise ConnectionClosed(f"{self.name}: connection closed")
            self.post(list(messages))
            return
        data = self._encode(messages)
        if not data:
            return
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionClosed(f"{self.name}: connection closed")
            self._send_all(data)

    def _send_all(self, pending: list[Piece]) -> None:
        """Send all of *pending* within ``send_timeout``, or close. Call with the send lock."""
        deadline = time.monotonic() + self.send_timeout
        while pending:
            sent = self._send_some(pending)
            if sent is None:
                raise ConnectionClosed(f"{self.name}: send failed")
            pending = advance(pending, sent)
            left = deadline - time.monotonic()
            if pending and left <= 0:
                self.close()
                raise ConnectionClosed(
                    f"{self.name}: peer has not read for {self.send_timeout:g} s"
                )
            if pending and not sent:
                self._waits.for_room(min(left, 0.1))

    def start_writer(self, max_queued: int = 100_000) -> None:
        """From now on, send through a writer thread of this connection's own (see :meth:`post`)."""
        self._outgoing = queue.SimpleQueue()
        self._max_queued = max_queued
        self._writer = threading.Thread(target=self._write_loop, name=f"{self.name} writer")
        self._writer.start()

    def post(self, messages: Sequence[Message | bytes | Gather]) -> None:
        """Send messages without ever blocking the caller; order is kept.

        If nothing is waiting for the writer thread, the bytes go out at once from this
        thread with a non-blocking send (no thread hop: the lowest latency). Whatever the
        socket does not take right away is queued for the writer, which joins everything
        queued into one buffer (under load, a burst of small messages costs one system
        call). A peer that reads too slowly for the queue to stay under ``max_queued``
        batches is disconnected.
        """
        if self._outgoing is None:  # no writer thread: send from this one
            self.send_many(messages)
            return
        with self._send_lock:
            if self._closed.is_set():
                return
            if self._queued >= self._max_queued:
                log.warning("%s: peer reads too slowly; closing", self.name)
                self.close()
                return
            batch: Sequence[Outgoing] = messages
            if self._queued == 0:  # nothing ahead of these messages: try to send them now
                pieces = self._encode(messages)
                sent = self._send_some(pieces) if pieces else 0
                if sent is None or (len(pieces) == 1 and sent == len(pieces[0])):
                    return  # failed, or all sent (the common case)
                rest = advance(pieces, sent)
                if not rest:
                    return
                batch = [OnTheWire(rest)]  # what is left goes first
            self._queued += 1
            self._outgoing.put(batch)

    def _send_some(self, pieces: list[Piece]) -> int | None:
        """Send what the socket takes now, without waiting; ``None`` if the connection
        failed. The socket has no timeout, so ``MSG_DONTWAIT`` is one system call, never a
        wait. Several pieces go in one (:func:`~vistrit.transport.sending.send_pieces`).
        Call with the lock."""
        try:
            if len(pieces) == 1:  # most sends
                return self._sock.send(pieces[0], socket.MSG_DONTWAIT)
            return send_pieces(self._sock, pieces)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.close()
            return None

    def _encode(self, messages: Iterable[Outgoing]) -> list[Piece]:
        """The pieces for the socket, in order (none if there is nothing to send): frames
        encoded into one buffer, large fields spliced in (and, with TLS, encrypted); what
        is already on its way (the rest of a partial send) is kept as it is."""
        out: list[Piece] = []
        frames = Gather()
        for m in messages:
            if isinstance(m, Message):
                encode_frame_into(frames, m, frame_version(m, self.version))
            elif isinstance(m, OnTheWire):
                if frames:
                    out += self._seal(frames)
                    frames = Gather()
                out += m.pieces
            elif isinstance(m, Gather):
                frames.extend_gather(m)
            else:
                frames += m
        if frames:
            out += self._seal(frames)
        return out

    def _seal(self, frames: Gather) -> list[Piece]:
        if self._tls is None:
            return frames.pieces() if frames.spliced else [frames]
        return [self._tls.encrypt(piece) for piece in frames.pieces()]

    def _write_loop(self) -> None:
        """The writer thread: send what is queued, a batch at a time, never holding the
        send lock while it waits for a slow peer (so ``post`` never waits for it)."""
        assert self._outgoing is not None
        while True:
            batch = self._outgoing.get()
            if batch is None:
                return
            messages: list[Outgoing] = list(batch)
            taken = 1
            while not self._outgoing.empty():  # coalesce whatever else is waiting
                more = self._outgoing.get_nowait()
                if more is None:
                    self._outgoing.put(None)
                    break
                messages += more
                taken += 1
            try:
                pending = self._encode(messages)
            except Exception:  # a thread boundary: an unencodable message is a bug; log it
                log.exception("%s: writer failed", self.name)
                self.close()
                return
            del batch, messages  # sent or not, not held while the queue is waited on
            if not self._drain(pending):
                return
            del pending  # an 8 MiB frame is not kept alive until the next one
            with self._send_lock:
                self._queued -= taken  # only now may post() send directly again
                self._send_lock.notify_all()

    def _drain(self, pending: list[Piece]) -> bool:
        """Send all of *pending*; False if the connection failed or the peer stalled."""
        stalled_since = time.monotonic()
        while pending:
            with self._send_lock:
                if self._closed.is_set():
                    return False
                sent = self._send_some(pending)
            if sent is None:
                return False
            if sent:
                pending = advance(pending, sent)
                stalled_since = time.monotonic()
                continue
            waited = time.monotonic() - stalled_since
            if waited >= self.send_timeout:
                log.warning("%s: peer has not read for %.0f s; closing", self.name, waited)
                self.close()
                return False
            self._waits.for_room(0.1)  # without the lock
        return True

    def flush(self, timeout: float = defaults.SEND_TIMEOUT) -> bool:
        """Wait until everything posted has been sent; False if *timeout* passed first."""
        with self._send_lock:
            return self._send_lock.wait_for(
                lambda: self._queued == 0 or self._closed.is_set(), timeout
            )

    def join_writer(self, timeout: float = defaults.SEND_TIMEOUT) -> None:
        """Wait for the writer thread to finish (after ``close``)."""
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout)

    def receive(self, deadline: float | None = None) -> Message | None:
        """The next message; ``None`` at a clean end of stream.

        *deadline* (``time.monotonic()``) bounds the wait for a whole message. A started
        frame must also finish within ``frame_timeout``. Raises ``PeerTimeout``,
        ``ProtocolError`` (bad bytes) or ``ConnectionClosed``.
        """
        frame_started: float | None = None
        if self._refused is not None:
            raise self._refused
        while True:
            frame = self._decoder.next_frame()  # ProtocolError propagates to the caller
            if frame is not None:
                self._check_version(frame)
                self.last_frame = frame
                return frame.message
            now = time.monotonic()
            limits = [] if deadline is None else [deadline]
            if self._decoder.buffered:
                frame_started = frame_started or now
                limits.append(frame_started + self.frame_timeout)
            if limits and now >= min(limits):
                what = "finish its frame" if self._decoder.buffered else "send a message"
                raise PeerTimeout(f"{self.name}: peer did not {what} in time")
            wait = None if not limits else min(limits) - now
            room = self._decoder.room() if self._tls is None else None
            if room is not None:  # a large frame: received in place, never copied on
                with room:  # let go of the view before the decoder moves its buffer
                    got = self._recv_into(room, wait)
                if got == 0:
                    raise ConnectionClosed(f"{self.name}: peer closed mid-frame")
                if got is not None:
                    self._decoder.filled(got)
                continue
            data = self._recv(wait)
            if data is None:
                continue
            if not data:
                if self._decoder.buffered:
                    raise ConnectionClosed(f"{self.name}: peer closed mid-frame")
                return None
            self._decoder.feed(data)

    def _check_version(self, frame: Frame) -> None:
        if self.agreed and frame.version > self.version:
            raise UnsupportedVersion(
                f"a v{frame.version} frame ({frame.message.WIRE_NAME}) on a connection that "
                f"agreed on v{self.version}",
                offset=VERSION_OFFSET,
            )

    def buffered_messages(self) -> list[Message]:
        """The messages whose frames have already arrived whole, without waiting for more.

        A burst that came in one ``recv`` can then be handled as one batch. A bad frame
        ends the batch; the next ``receive`` raises its ``ProtocolError`` (the decoder keeps
        it), after the good messages before it have been handled.
        """
        messages = []
        try:
            while (frame := self._decoder.next_frame()) is not None:
                self._check_version(frame)
                self.last_frame = frame
                messages.append(frame.message)
        except ProtocolError as exc:
            self._refused = exc  # raised by the next receive, after this batch is handled
        return messages

    def _recv(self, wait: float | None) -> bytes | None:
        """Up to RECV_SIZE bytes; ``None`` if *wait* passed first; ``b""`` at end of stream.

        The wait is the ``recv``'s own, bounded by the kernel, or a ``poll`` under a second
        (:mod:`vistrit.transport.waits`); ``close()`` wakes it by shutting the socket down.
        """
        if self._closed.is_set():
            return b""
        if self._tls is not None and (ready := self._tls.decrypt(b"")):
            return ready  # records already in hand (read with the handshake's last bytes)
        try:
            if not self._waits.before_recv(wait):
                return None
            raw = self._sock.recv(defaults.RECV_SIZE)
        except BlockingIOError:  # SO_RCVTIMEO: the bound passed
            return None
        except OSError as exc:
            if self._closed.is_set():
                return b""
            raise ConnectionClosed(f"{self.name}: {exc.strerror or exc}") from exc  # a reset
        if self._tls is None or not raw:
            return raw
        try:
            return self._tls.decrypt(raw) or None  # None: a record is not complete yet
        except ssl.SSLError as exc:
            raise ConnectionClosed(f"{self.name}: TLS: {exc.reason or exc}") from exc

    def _recv_into(self, room: memoryview, wait: float | None) -> int | None:
        """Receive into *room* (no TLS): how many bytes came; ``None`` if *wait* passed
        first; 0 at end of stream."""
        if self._closed.is_set():
            return 0
        try:
            if not self._waits.before_recv(wait):
                return None
            return self._sock.recv_into(room)
        except BlockingIOError:  # SO_RCVTIMEO: the bound passed
            return None
        except OSError as exc:
            if self._closed.is_set():
                return 0
            raise ConnectionClosed(f"{self.name}: {exc.strerror or exc}") from exc  # a reset

    def receive_raw(self, wait: float | None = None) -> bytes | None:
        """Raw bytes as they arrive (for the wire tracer): ``b""`` at end of stream, ``None``
        if *wait* seconds passed first."""
        return self._recv(wait)

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (the wire tracer relays frames this way)."""
        with self._send_lock:
            self._send_all([data])

    def refuse(self, error: ProtocolError | str, code: ErrorCode | None = None) -> None:
        """Tell the peer why it is being dropped (best effort), then close."""
        if isinstance(error, ProtocolError):
            code, text = error.code, str(error)
        else:
            code, text = code or ErrorCode.InvalidRequest, error
        try:
            self.send(Error(code=code, message=text))
            self.flush(1.0)  # a queued Error must leave before the close
        except (ConnectionClosed, OSError):
            pass
        self.close()

    def shutdown(self) -> None:
        """End both directions, keeping the descriptor: a reader in another thread wakes
        (it reads the end of the stream), and no other socket can take its number until
        :meth:`close`. (Closing while another thread may be about to wait on the socket
        can leave it waiting on whatever socket is given the freed number next.)"""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Close now; a reader blocked in ``receive`` returns ``None``. Idempotent, and safe
        with or without the send lock held: it never waits for the lock (it only tries it,
        to wake ``flush()`` waiters)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._outgoing is not None:
            self._outgoing.put(None)
        # Wake flush() waiters. Only possible without the lock when nobody holds it.
        if self._send_lock.acquire(blocking=False):
            try:
                self._send_lock.notify_all()
            finally:
                self._send_lock.release()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __repr__(self) -> str:
        return f"<Connection {self.name} peer={self.peer}>"
