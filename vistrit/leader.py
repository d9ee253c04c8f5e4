"""How a worker or a client finds the coordinator that leads, and keeps away from old ones.

Both are given a list of coordinator addresses (``--coordinator a:7878,b:7878,c:7878``).
:class:`LeaderFinder` tries them in turn, the leader named by the last redirect first:

* a coordinator that leads answers the ``Handshake`` with ``HandshakeAck`` and then (v3)
  a ``LeaderAnnounce`` saying its term;
* one that does not lead answers ``Redirect`` (v3; ``Error`` of code ``Unavailable`` for
  older versions) naming the leader, or no one while an election runs; the finder goes
  there next, and if no coordinator leads yet it says so (:class:`NoLeader`), so that
  the caller tries again shortly instead of backing off for long.

Terms fence off deposed leaders: the finder remembers the newest term it has seen (in a
redirect or an announcement), and :meth:`LeaderFinder.observe` says whether a leader's
term is still acceptable. A leader that was paused and comes back with an older term is
refused: the worker or client looks for the current one instead.

Read next: :mod:`vistrit.worker`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vistrit import defaults
from vistrit.addresses import parse_address
from vistrit.logic.auth import (
    AUTH_VERSION,
    NONCE_BYTES,
    coordinator_proof,
    node_proof,
    proofs_match,
)
from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout, TLSConfig, connect

Address = tuple[str, int]


class Redirected(ConnectionError):
    """A coordinator that does not lead sent us elsewhere (``leader`` None: not known yet),
    saying the newest term it knows (0 from a pre-v3 ``Error``)."""

    def __init__(self, reason: str, leader: Address | None, term: int = 0) -> None:
        super().__init__(reason)
        self.leader = leader
        self.term = term


class NoLeader(ConnectionError):
    """Coordinators answered, but none leads yet (an election is under way): try again
    soon, without backing off far."""


class Refused(ConnectionError):
    """A coordinator refused the handshake: ``HandshakeAck`` not accepted."""


class AuthenticationFailed(Refused):
    """One side of the handshake could not prove it holds the secret, or a coordinator did
    not try (a downgrade). Never a reason to retry with an older protocol."""


class Unanswered(ConnectionError):
    """A coordinator accepted the connection but did not answer the handshake (a frozen
    process, a wrong port): the next address is tried."""


class LeaderFinder:
    """The addresses to try, the leader to try first, and the newest term seen."""

    def __init__(
        self,
        addresses: Sequence[Address],
        auth: NodeAuth | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("no coordinator address given")
        self.addresses = list(addresses)
        self.auth = auth
        self.tls = tls
        self.leader: Address | None = None
        self.term = 0
        self.joined: Address = self.addresses[0]  # the coordinator of the last success

    def order(self) -> list[Address]:
        """The addresses to try now: the known leader first, then the others in turn."""
        first = [self.leader] if self.leader is not None else []
        return first + [a for a in self.addresses if a != self.leader]

    def observe(self, term: int) -> bool:
        """A leader says it leads in *term*: False if that term is older than one seen."""
        if term < self.term:
            return False
        self.term = term
        return True

    def deposed(self, message: m.Message) -> str | None:
        """Why to leave the coordinator that sent *message*: it announces a term older
        than one already seen (a deposed leader). None for anything else."""
        if isinstance(message, m.LeaderAnnounce) and not self.observe(message.term):
            return (
                f"the coordinator leads term {message.term}, older than term {self.term}: "
                "it was deposed"
            )
        return None

    def open(
        self,
        hello: Callable[[Connection], m.Handshake],
        timeout: float,
        name: str,
        patience: float = 0.0,
    ) -> tuple[Connection, m.HandshakeAck]:
        """Connect to the leader: each address in turn, following redirects; while no
        coordinator leads, try again every ``RECONNECT_BACKOFF`` for up to *patience*
        seconds. Raises :class:`Refused` if a coordinator refuses the handshake itself (a
        version it does not speak, a node id already connected), :class:`NoLeader` if none
        leads, else ``ConnectionError`` saying what each coordinator answered."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self._open_once(hello, timeout, name)
            except NoLeader:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(defaults.RECONNECT_BACKOFF)  # an election takes a fraction of a second

    def _open_once(
        self, hello: Callable[[Connection], m.Handshake], timeout: float, name: str
    ) -> tuple[Connection, m.HandshakeAck]:
        errors: list[str] = []
        redirected = False
        tried: set[Address] = set()
        queue = self.order()
        while queue:
            address = queue.pop(0)
            if address in tried:
                continue
            tried.add(address)
            where = f"{address[0]}:{address[1]}"
            try:
                conn = connect(address, timeout=timeout, name=name, tls=self.tls)
            except OSError as exc:
                errors.append(f"{where}: {exc.strerror or exc}")
                if self.leader == address:
                    self.leader = None
                continue
            try:
                ack = handshake(conn, hello(conn), timeout, self.auth)
                self.joined = address
                return conn, ack
            except Unanswered as exc:
                conn.close()
                errors.append(f"{where}: {exc}")
                if self.leader == address:
                    self.leader = None  # not worth trying first again
            except Redirected as exc:
                conn.close()
                redirected = True
                self.observe(max(exc.term, self.term))
                self.leader = exc.leader
                errors.append(f"{where}: {exc}")
                if exc.leader is not None and exc.leader not in tried:
                    queue.insert(0, exc.leader)
            except Refused as exc:
                conn.close()
                raise type(exc)(f"{where}: {exc}") from None
        raise (NoLeader if redirected else ConnectionError)("; ".join(errors))


@dataclass(frozen=True)
class NodeAuth:
    """How a node authenticates: the role and secret of its credential, and whether it may
    join a coordinator that does not authenticate (a reference or older node)."""

    role: str
    secret: bytes
    allow_unauthenticated: bool = False


def handshake(
    conn: Connection, hello: m.Handshake, timeout: float, auth: NodeAuth | None = None
) -> m.HandshakeAck:
    """Send *hello* on a new connection and read the coordinator's answer: its accepting
    ``HandshakeAck``, or :class:`Redirected` (a ``Redirect``, or an ``Error`` of code
    ``Unavailable``), :class:`Refused` or :class:`Unanswered`. Sets the connection's
    version to the one offered once accepted.

    A v4 coordinator first challenges the node (``AuthChallenge``): the node proves it
    holds *auth* 's secret and checks the coordinator's proof (:mod:`vistrit.logic.auth`).
    A coordinator that does not challenge a node offering v4 is refused (a downgrade),
    unless ``auth.allow_unauthenticated``."""
    deadline = time.monotonic() + timeout
    try:
        conn.send(hello)
        answer = conn.receive(deadline)
        authenticated = isinstance(answer, m.AuthChallenge)
        if isinstance(answer, m.AuthChallenge):
            answer = answer_challenge(conn, hello, answer, auth, deadline)
    except Refused:
        raise
    except (ProtocolError, ConnectionClosed, PeerTimeout, OSError) as exc:
        raise Unanswered(f"no HandshakeAck: {exc}") from exc
    if answer is None:
        raise Unanswered("the connection closed before a HandshakeAck")
    downgraded = not authenticated and hello.protocol_version >= AUTH_VERSION
    insisting = auth is not None and not auth.allow_unauthenticated
    if downgraded and insisting and not _is_refusal(answer):
        raise AuthenticationFailed(
            "the coordinator did not authenticate itself (an older protocol, or not "
            "Vistrit's): refused; --allow-unauthenticated admits such coordinators"
        )
    if isinstance(answer, m.Redirect):
        leader = answer.leader_address
        where = (leader.host, leader.port) if leader is not None else None
        raise Redirected(answer.reason, where, answer.term)
    if isinstance(answer, m.Error) and answer.code == ErrorCode.Unavailable:
        where = parse_address(answer.entity_id) if answer.entity_id else None
        raise Redirected(answer.message, where)
    if not isinstance(answer, m.HandshakeAck):
        raise Refused(f"expected HandshakeAck, got {answer!r}")
    if not answer.accepted:
        raise Refused(answer.reason or "refused")
    conn.agree(hello.protocol_version)
    conn.lift_frame_cap()
    return answer


def _is_refusal(answer: m.Message) -> bool:
    """A refusal, which needs no authentication to be believed (it grants nothing)."""
    if isinstance(answer, m.HandshakeAck):
        return not answer.accepted
    return isinstance(answer, m.Error) and answer.code != ErrorCode.Unavailable


def answer_challenge(
    conn: Connection,
    hello: m.Handshake,
    challenge: m.AuthChallenge,
    auth: NodeAuth | None,
    deadline: float,
) -> m.Message | None:
    """Answer a coordinator's ``AuthChallenge`` with *auth* 's proof, and check the
    coordinator's; returns the message after its ``AuthConfirm`` (its answer to the
    handshake). Raises :class:`Refused` if either side's proof fails."""
    if auth is None:
        raise AuthenticationFailed("the coordinator asks for a credential; this node has none")
    if hello.protocol_version < AUTH_VERSION:
        raise AuthenticationFailed("a challenge to a handshake that did not offer v4")
    version = AUTH_VERSION
    node_id = hello.node_info.id
    nonce = os.urandom(NONCE_BYTES)
    proof = node_proof(auth.secret, auth.role, version, node_id, challenge.nonce, nonce)
    conn.agree(version)  # the exchange's frames are v4
    conn.send(m.AuthResponse(role=auth.role, nonce=nonce, proof=proof))
    confirm = conn.receive(deadline)
    if isinstance(confirm, m.Error):
        raise AuthenticationFailed(f"{confirm.code.name}: {confirm.message}")
    if not isinstance(confirm, m.AuthConfirm):
        raise AuthenticationFailed(f"expected AuthConfirm, got {confirm!r}")
    expected = coordinator_proof(auth.secret, auth.role, version, node_id, challenge.nonce, nonce)
    if not proofs_match(expected, confirm.proof):
        raise AuthenticationFailed("the coordinator could not prove it holds the cluster's secret")
    return conn.receive(deadline)
