"""The coordinator's gate: a node proves who it is before anything else is served.

A coordinator runs every new connection through its :class:`Gate` right after the
``Handshake`` arrives, before the node is a worker, a client or a peer:

* a node offering protocol v4 or newer is **challenged** (``AuthChallenge``), must answer
  with a proof for a credential whose role may join as what it says it is
  (``AuthResponse``, checked by :func:`vistrit.logic.auth.check_node`), and is sent the
  coordinator's own proof (``AuthConfirm``); a wrong secret, a wrong role, a replayed
  answer or no answer in time gets an ``Error`` of code ``AuthFailed`` and the connection
  is closed;
* a node offering an older version (the reference implementation, an older Vistrit)
  cannot authenticate: it is refused with a ``HandshakeAck`` saying why, unless the
  coordinator was started with ``--allow-unauthenticated``, which admits it (logged as a
  warning).

The log says why a node was refused; the node is told only that authentication failed,
so that a prober learns nothing about which part was wrong.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TypeVar

from vistrit.credentials import Credentials
from vistrit.logic.auth import AUTH_VERSION, NONCE_BYTES, check_node, coordinator_proof
from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION, agree_version
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import NodeInfo
from vistrit.transport import Connection, ConnectionClosed, PeerTimeout

log = logging.getLogger(__name__)

T = TypeVar("T", bound=m.Message)

#: What a node is told when its proof does not check out (the log says more).
AUTH_FAILED = "authentication failed"


class Gate:
    """Authenticates the nodes that connect to one coordinator (see the module docstring)."""

    def __init__(
        self,
        credentials: Credentials,
        info: NodeInfo,
        *,
        allow_unauthenticated: bool = False,
        timeout: float,
        name: str,
    ) -> None:
        self.credentials = credentials
        self.info = info
        self.allow_unauthenticated = allow_unauthenticated
        self.timeout = timeout
        self.name = name

    def admit(self, conn: Connection, hello: m.Handshake) -> tuple[bool, str | None]:
        """Let the node that said *hello* in, or refuse it (and close the connection).
        Returns whether it passed, and the role it proved (None: admitted without one)."""
        node = hello.node_info
        version = agree_version(NEWEST_VERSION, hello.protocol_version)
        if version is not None and version >= AUTH_VERSION:
            role = self._challenge(conn, hello, version)
            return role is not None, role
        who = f"{node.node_type.name.lower()} {node.name or node.id} from {conn.peer}"
        if self.allow_unauthenticated:
            log.warning(
                "%s: admitting %s without authentication (protocol v%d)",
                self.name,
                who,
                hello.protocol_version,
            )
            return True, None
        reason = (
            f"authentication required: this coordinator speaks protocol v{AUTH_VERSION} with "
            "a shared secret (a token file); it admits older nodes only when started with "
            "--allow-unauthenticated"
        )
        log.warning("%s: refused %s: it cannot authenticate", self.name, who)
        refusal = m.HandshakeAck(
            accepted=False, node_id=node.id, coordinator_info=self.info, reason=reason
        )
        try:
            conn.send(refusal)
        except ConnectionClosed:
            pass
        conn.close()
        return False, None

    def expect(self, conn: Connection, kind: type[T], code: ErrorCode) -> T | None:
        """The next message, if it is a *kind* and comes within the timeout; else refuse
        the peer (an ``Error`` of *code*, or of the protocol error's) and return None."""
        try:
            message = conn.receive(time.monotonic() + self.timeout)
        except PeerTimeout:
            conn.refuse(f"no {kind.WIRE_NAME} within {self.timeout:g} s", code)
            return None
        except ProtocolError as exc:
            conn.refuse(exc)
            return None
        except ConnectionClosed:
            return None
        if message is None:
            return None
        if not isinstance(message, kind):
            conn.refuse(f"expected {kind.WIRE_NAME}, got {message.WIRE_NAME}", code)
            return None
        return message

    def _challenge(self, conn: Connection, hello: m.Handshake, version: int) -> str | None:
        """The challenge-response; the role proved, or None (refused and closed)."""
        node = hello.node_info
        nonce = os.urandom(NONCE_BYTES)
        try:
            conn.agree(version)  # the exchange's frames are v4
            conn.send(m.AuthChallenge(nonce=nonce))
        except ConnectionClosed:
            return None
        answer = self.expect(conn, m.AuthResponse, ErrorCode.AuthFailed)
        if answer is None:
            return None
        why = check_node(
            self.credentials.secrets,
            node.node_type,
            answer.role,
            version,
            node.id,
            nonce,
            answer.nonce,
            answer.proof,
        )
        if why is not None:
            log.warning("%s: refused %s from %s: %s", self.name, node.name, conn.peer, why)
            conn.refuse(AUTH_FAILED, ErrorCode.AuthFailed)
            return None
        secret = self.credentials.secrets[answer.role]
        proof = coordinator_proof(secret, answer.role, version, node.id, nonce, answer.nonce)
        try:
            conn.send(m.AuthConfirm(proof=proof))
        except ConnectionClosed:
            return None
        return answer.role


__all__ = ["AUTH_FAILED", "Gate"]
