"""Authentication: a mutual challenge-response on a shared secret, and what each role may do.

Every node of a cluster holds a secret (a *credential*), each for a *role*: coordinator,
worker or client. When a node joins a coordinator (protocol v4), each side proves to the
other that it holds the secret, without sending it:

1. the node sends its ``Handshake`` (its id, its kind, the version it offers);
2. the coordinator answers ``AuthChallenge`` with a fresh random *coordinator nonce*;
3. the node answers ``AuthResponse``: the role of its credential, a fresh *node nonce*,
   and its proof, :func:`node_proof`;
4. the coordinator checks the proof with its own copy of that role's secret (with
   ``hmac.compare_digest``, which takes as long whatever the bytes), checks that the role
   may join as the node's kind (:data:`MAY_JOIN_AS`), and answers ``AuthConfirm`` with its
   own proof, :func:`coordinator_proof`, then the usual ``HandshakeAck``;
5. the node checks the coordinator's proof before it believes anything else it says.

Each proof is an HMAC-SHA256 of everything the exchange agreed on: who proves (a
different label for each side, so that one side's proof can never be sent back as the
other's), the role, the protocol version, the node's id, and both nonces. A proof is
good for one connection only: a new connection has new nonces, so a recorded exchange
replayed later fails (and an attacker who changes the role or the version in flight
invalidates the proof).

What this does not do: hide anything. Without TLS the frames after the handshake travel
in clear, and someone who can change packets in flight can take over a connection once it
is authenticated. A stolen secret is a stolen role.

This module never touches sockets, threads, clocks or logging; nonces are passed in.
Read next: :mod:`vistrit.credentials`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid
from collections.abc import Mapping

from vistrit.protocol.types import NodeType

#: The roles a credential can have, least powerful first.
ROLES = ("client", "worker", "coordinator")

#: Which kinds of node a credential of each role may join as. A client's credential is a
#: client only; a worker's may also submit work (as a client, or as the reference CLI,
#: which handshakes as a worker); only a coordinator's may join as a coordinator.
MAY_JOIN_AS: dict[str, frozenset[NodeType]] = {
    "client": frozenset({NodeType.Client}),
    "worker": frozenset({NodeType.Worker, NodeType.Client}),
    "coordinator": frozenset({NodeType.Coordinator, NodeType.Worker, NodeType.Client}),
}

#: How many random bytes each nonce has. 32 bytes: never drawn twice.
NONCE_BYTES = 32

#: The fewest bytes a secret may have (128 bits).
MIN_SECRET_BYTES = 16

#: The first protocol version that authenticates.
AUTH_VERSION = 4

_NODE_LABEL = b"vistrit v4 node proof"
_COORDINATOR_LABEL = b"vistrit v4 coordinator proof"


def _proof(
    label: bytes,
    secret: bytes,
    role: str,
    version: int,
    node_id: uuid.UUID,
    coordinator_nonce: bytes,
    node_nonce: bytes,
) -> bytes:
    role_bytes = role.encode("utf-8")
    message = b"".join(
        [
            label,
            struct.pack(">H", len(role_bytes)),
            role_bytes,
            struct.pack(">B", version),
            node_id.bytes,
            coordinator_nonce,
            node_nonce,
        ]
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def node_proof(
    secret: bytes,
    role: str,
    version: int,
    node_id: uuid.UUID,
    coordinator_nonce: bytes,
    node_nonce: bytes,
) -> bytes:
    """What a node sends to prove it holds *secret* for *role* (see the module docstring)."""
    return _proof(_NODE_LABEL, secret, role, version, node_id, coordinator_nonce, node_nonce)


def coordinator_proof(
    secret: bytes,
    role: str,
    version: int,
    node_id: uuid.UUID,
    coordinator_nonce: bytes,
    node_nonce: bytes,
) -> bytes:
    """What the coordinator sends back to prove it holds the same secret."""
    return _proof(_COORDINATOR_LABEL, secret, role, version, node_id, coordinator_nonce, node_nonce)


def proofs_match(expected: bytes, given: bytes) -> bool:
    """Compare two proofs in time that does not depend on where they differ."""
    return hmac.compare_digest(expected, given)


def check_node(
    secrets: Mapping[str, bytes],
    kind: NodeType,
    role: str,
    version: int,
    node_id: uuid.UUID,
    coordinator_nonce: bytes,
    node_nonce: bytes,
    proof: bytes,
) -> str | None:
    """The coordinator's check of an ``AuthResponse``: None if the node proved it holds
    the secret of *role* and that role may join as *kind*; else why not (for the log: the
    node itself is only told that authentication failed)."""
    secret = secrets.get(role)
    if secret is None:
        return f"no credential for the role {role!r}"
    if len(node_nonce) != NONCE_BYTES:
        return f"a node nonce of {len(node_nonce)} bytes (expected {NONCE_BYTES})"
    expected = node_proof(secret, role, version, node_id, coordinator_nonce, node_nonce)
    if not proofs_match(expected, proof):
        return f"a wrong proof for the role {role!r} (a wrong secret, or a replay)"
    if kind not in MAY_JOIN_AS.get(role, frozenset()):
        return f"a {role} credential cannot join as a {kind.name.lower()}"
    return None


def role_for(kind: NodeType, roles: Mapping[str, bytes]) -> str | None:
    """The role a node of *kind* presents, among those it holds a secret for: the least
    powerful that may join as *kind* (None if none may)."""
    for role in ROLES:
        if role in roles and kind in MAY_JOIN_AS[role]:
            return role
    return None


__all__ = [
    "AUTH_VERSION",
    "MAY_JOIN_AS",
    "MIN_SECRET_BYTES",
    "NONCE_BYTES",
    "ROLES",
    "check_node",
    "coordinator_proof",
    "node_proof",
    "proofs_match",
    "role_for",
]
