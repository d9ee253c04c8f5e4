"""A node's session with its coordinator: join, heartbeat, read, and come back after a loss.

Workers and clients keep one connection to the coordinator that leads, and must survive
losing it: the coordinator restarts, the leader dies and another takes over, a network
cable is pulled, a process freezes. :class:`NodeSession` is that behaviour, once, for both:

1. **Join** the leader among the coordinators (:class:`~vistrit.leader.LeaderFinder`
   follows redirects), handshake, and, for a worker, fall back to protocol v1 when the
   coordinator speaks only that (the reference coordinator).
2. **Heartbeat** every ``heartbeat_interval`` (a :class:`~vistrit.timers.RepeatingTimer`).
   The coordinator answers each one, so the session also knows when the coordinator fell
   silent: after ``coordinator_timeout`` without a word from it (a frozen process, a cut
   cable) the session leaves it, as if the connection had closed.
3. **Read** every message on one reader thread and hand it to the owner (the worker or
   the client), except a ``LeaderAnnounce`` of a term older than one already seen: that
   coordinator was deposed, and the session leaves it.
4. **Reconnect** when the connection is lost: try again with
   :class:`~vistrit.logic.backoff.Backoff` (an election in progress is brief, and does
   not grow the pause) until ``reconnect_timeout``; once joined, the owner says what to
   send first (a worker's still-running tasks, a client's unfinished submissions). If no
   coordinator comes back, the owner is told, and decides.

The owner supplies the node-specific parts through the :class:`SessionOwner` hooks, in
the way ``socketserver`` handlers do: what to say in a ``Handshake`` and a ``Heartbeat``,
what to do with a message, with a loss, with a return, and when giving up.

Read next: :mod:`vistrit.worker`.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from vistrit import defaults
from vistrit.credentials import Credentials, CredentialsError, default_path
from vistrit.leader import (
    Address,
    AuthenticationFailed,
    LeaderFinder,
    NodeAuth,
    NoLeader,
    Refused,
)
from vistrit.logic.backoff import Backoff
from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION
from vistrit.protocol.gather import Gather
from vistrit.protocol.types import NodeType
from vistrit.timers import RepeatingTimer
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout, TLSConfig

log = logging.getLogger(__name__)

#: How long to wait before trying to reach a coordinator again, after each failure.
RECONNECT = Backoff(defaults.RECONNECT_BACKOFF, defaults.RECONNECT_BACKOFF_MAX)


class SessionOwner(Protocol):
    """The hooks a node gives its session. They run on the session's threads: the reader
    (``on_message``, ``on_lost``, ``on_rejoined``, ``on_gave_up``) and the heartbeat timer
    (``heartbeat``)."""

    name: str

    def hello(self, conn: Connection, version: int) -> m.Handshake:
        """The Handshake to send on *conn*, offering *version*."""
        ...

    def heartbeat(self) -> m.Heartbeat:
        """The Heartbeat to send now."""
        ...

    def on_message(self, message: m.Message) -> None:
        """A message from the coordinator."""
        ...

    def on_lost(self, reason: str) -> None:
        """The connection was lost (for *reason*); the session is about to reconnect."""
        ...

    def on_rejoined(self, conn: Connection) -> Sequence[m.Message | bytes | Gather]:
        """Joined again on *conn*: what to send before anything else. Called under the
        session's lock, so that a concurrent stop either sees the new connection or
        prevents it."""
        ...

    def on_gave_up(self, reason: str) -> None:
        """No coordinator came back within ``reconnect_timeout``."""
        ...


class NodeSession:
    """One node's session with its coordinators (see the module docstring).

    For the owner: :meth:`start`, :meth:`beat`, :meth:`halt`, :meth:`close`, and ``conn``
    (the connection of the moment: replaced after a reconnect). *lock* is the owner's
    lock, held while the connection is replaced.
    """

    def __init__(
        self,
        owner: SessionOwner,
        addresses: Sequence[Address],
        *,
        lock: threading.Lock,
        heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL,
        coordinator_timeout: float = defaults.COORDINATOR_TIMEOUT,
        reconnect_timeout: float = defaults.RECONNECT_TIMEOUT,
        handshake_timeout: float = defaults.HANDSHAKE_TIMEOUT,
        fall_back_to_v1: bool = False,
        daemon: bool = False,
        auth: NodeAuth | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        self.owner = owner
        self.finder = LeaderFinder(addresses, auth, tls)
        self.conn: Connection | None = None
        self.coordinator_timeout = coordinator_timeout
        self.reconnect_timeout = reconnect_timeout
        self.handshake_timeout = handshake_timeout
        self.fall_back_to_v1 = fall_back_to_v1
        self.last_heard = time.monotonic()
        self._lock = lock
        self._daemon = daemon
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        self._heartbeat = RepeatingTimer(
            heartbeat_interval, self.beat, name=f"{owner.name} heartbeat"
        )

    @property
    def stopping(self) -> bool:
        """True once :meth:`halt` was called."""
        return self._stopping.is_set()

    @property
    def joined(self) -> Address:
        """The address of the coordinator joined last."""
        return self.finder.joined

    # -- joining ----------------------------------------------------------------------------

    def connect(self, patience: float = 0.0) -> Connection:
        """Join the leader (see :meth:`LeaderFinder.open`), offering the newest version and,
        if refused and allowed (a worker told ``allow_unauthenticated``), version 1. Raises
        ``OSError`` (``Refused``, ``NoLeader`` and other ``ConnectionError`` s among them)
        if it cannot."""
        version = NEWEST_VERSION
        while True:
            try:
                conn, _ = self.finder.open(
                    functools.partial(self.owner.hello, version=version),
                    self.handshake_timeout,
                    self.owner.name,
                    patience,
                )
            except AuthenticationFailed:
                raise  # a failed proof is never a reason to try an older protocol
            except Refused:
                auth = self.finder.auth
                if auth is not None and not auth.allow_unauthenticated:
                    raise  # below v4 nothing authenticates: never fall back unasked
                if not self.fall_back_to_v1 or version == 1:
                    raise
                version = 1  # a v1-only coordinator (the reference one): offer v1
                continue
            self.last_heard = time.monotonic()
            conn.start_writer()  # sends never block the caller; bursts leave in batches
            return conn

    def start(self, patience: float, wait_for_coordinators: float = 0.0) -> None:
        """Join (while the coordinators elect a leader, keep trying for up to *patience*
        seconds; while none answers at all, for up to *wait_for_coordinators*), then start
        the reader and the heartbeat. Raises as :meth:`connect`."""
        self.conn = self._first_connection(patience, time.monotonic() + wait_for_coordinators)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"{self.owner.name} reader", daemon=self._daemon
        )
        self._reader.start()
        self.beat()
        self._heartbeat.start()

    def _first_connection(self, patience: float, deadline: float) -> Connection:
        """Connect; while no coordinator answers (not started yet), try again with backoff
        until *deadline*. A refusal is an answer: it is raised at once."""
        failures = 0
        while True:
            try:
                return self.connect(patience)
            except Refused:
                raise
            except OSError as exc:
                if time.monotonic() >= deadline or self._stopping.is_set():
                    raise
                if not failures:
                    log.info("%s: no coordinator yet (%s); waiting for one", self.owner.name, exc)
                failures += 1
                left = deadline - time.monotonic()
                self._stopping.wait(max(0.0, min(left, RECONNECT.pause(failures, random.random))))

    # -- heartbeats -------------------------------------------------------------------------

    def beat(self) -> None:
        """Send one heartbeat now; or, if the coordinator has been silent for longer than
        ``coordinator_timeout``, close the connection (the reader then looks for the
        leader again)."""
        conn = self.conn
        if self.stopping or conn is None or conn.closed:
            return
        silent = time.monotonic() - self.last_heard
        if silent > self.coordinator_timeout:
            log.warning("%s: no answer from the coordinator for %.1f s", self.owner.name, silent)
            conn.close()
            return
        try:
            conn.post([self.owner.heartbeat()])
        except ConnectionClosed:
            pass  # the reader notices

    # -- stopping ---------------------------------------------------------------------------

    def halt(self) -> None:
        """Stop heartbeating and reconnecting; the connection stays open (for a goodbye)."""
        with self._lock:  # a reconnection either sees this, or has set its connection
            self._stopping.set()
        self._heartbeat.stop()

    def close(self, goodbye: m.Message | None = None) -> None:
        """Halt, send *goodbye* after everything already posted, close the connection and
        join the writer and the reader."""
        self.halt()
        conn = self.conn
        if conn is not None:
            if goodbye is not None:
                try:
                    conn.post([goodbye])
                    conn.flush()
                except ConnectionClosed:
                    pass
            conn.close()
            conn.join_writer()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(defaults.SEND_TIMEOUT)

    # -- the reader -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Read until the connection ends; then reconnect, or tell the owner it is over."""
        while not self._stopping.is_set():
            reason = self._read_until_lost()
            if self._stopping.is_set():
                return  # the owner closes the connection, after its goodbye
            conn = self.conn
            assert conn is not None
            conn.close()
            conn.join_writer()
            log.warning("%s: %s; reconnecting", self.owner.name, reason)
            self.owner.on_lost(reason)
            if not self._reconnect():
                if not self.stopping:
                    self.owner.on_gave_up(reason)
                return

    def _read_until_lost(self) -> str:
        """Hand each message to the owner until the connection is lost; returns why."""
        conn = self.conn
        assert conn is not None
        try:
            while not self.stopping:
                message = conn.receive()
                if message is None:
                    return "the coordinator closed the connection"
                self.last_heard = time.monotonic()
                deposed = self.finder.deposed(message)
                if deposed is not None:
                    return deposed
                self.owner.on_message(message)
        except (ProtocolError, ConnectionClosed, PeerTimeout) as exc:
            return f"connection to the coordinator failed: {exc}"
        except Exception:  # a thread boundary: log, then reconnect
            log.exception("%s: reader failed", self.owner.name)
            return "internal error in the reader"
        return "stopping"

    def _reconnect(self) -> bool:
        """Join again, with backoff, until ``reconnect_timeout``; then send what the owner
        wants sent first, and heartbeat at once. False if no coordinator came back (or the
        session was halted meanwhile).

        A coordinator may still have the old connection open (it notices a silent one only
        after its heartbeat timeout) and refuse the same node id until then: that is one
        more reason to try again.
        """
        deadline = time.monotonic() + self.reconnect_timeout
        failures = 0
        while not self.stopping and time.monotonic() < deadline:
            try:
                conn = self.connect()
            except OSError as exc:
                log.debug("%s: not yet: %s", self.owner.name, exc)
                if not isinstance(exc, NoLeader):  # an election is brief: keep trying soon
                    failures += 1
                self._stopping.wait(RECONNECT.pause(failures, random.random))
                continue
            with self._lock:
                if self._stopping.is_set():  # halted meanwhile: this connection is not wanted
                    conn.close()
                    return False
                self.conn = conn
                backlog = self.owner.on_rejoined(conn)
            try:
                conn.post(backlog)
            except ConnectionClosed:
                pass  # lost again: the reader notices
            self.beat()
            return True
        return False


def node_auth(
    kind: NodeType, credentials: Credentials | None, allow_unauthenticated: bool = False
) -> NodeAuth | None:
    """How a node of *kind* authenticates: with its credential from *credentials* (None:
    the token file at :func:`~vistrit.credentials.default_path`). Raises
    :class:`~vistrit.credentials.CredentialsError` if it has none, unless
    *allow_unauthenticated* (then it joins only coordinators that do not authenticate)."""
    try:
        if credentials is None:
            credentials = Credentials.load(default_path())
        role, secret = credentials.own(kind)
    except CredentialsError as exc:
        if not allow_unauthenticated:
            raise
        log.warning("no credential (%s); joining only coordinators that do not ask", exc)
        return None
    return NodeAuth(role, secret, allow_unauthenticated)


__all__ = ["RECONNECT", "NodeSession", "SessionOwner", "node_auth"]
