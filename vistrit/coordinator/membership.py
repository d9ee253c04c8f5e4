"""Who may join a coordinator: the ``Handshake`` rules, and what it remembers of a peer.

A node opens a connection and sends a ``Handshake`` saying who it is (``NodeInfo``: its
id, its kind, its name) and the newest protocol version it speaks. The coordinator
agrees on the newest version both speak (:func:`~vistrit.protocol.catalogue.agree_version`)
and accepts the node, or refuses it with a reason:

* a version it does not speak (there is none in common);
* a client below version 2 (v1 had no client role);
* a coordinator, unless this coordinator is one of a cluster (its cluster admits peers);
* a node id that is already connected (one node, one connection).

Once joined, a node may send only what its kind may (:func:`may_send`): a client cannot
report on a task as if it had run it.

This module never touches sockets, threads or clocks. Read next:
:mod:`vistrit.coordinator.core`.
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass

from vistrit.coordinator.limits import over_limits
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION, agree_version
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import NodeInfo, NodeType


@dataclass
class Peer:
    """One handshaken connection: who it is, what it is, and the version agreed with it."""

    id: uuid.UUID
    kind: NodeType
    version: int
    name: str | None
    #: The role of the credential it proved (None: admitted without authentication).
    role: str | None = None


#: The messages only a worker may send: its reports on the tasks it was given. A client (or
#: the reference CLI, which joins as a worker but never heartbeats) may still send them as
#: a worker; the core checks that the task is that worker's (``_held_by``).
WORKER_REPORTS: frozenset[type[m.Message]] = frozenset(
    {m.TaskAssignAck, m.TaskStatus, m.TaskResultMessage, m.WorkerOffer}
)


def may_send(kind: NodeType, message: m.Message) -> bool:
    """May a node of *kind* send *message* at all? (Coordinators' own messages never reach
    the core: the cluster handles them.)"""
    return kind == NodeType.Worker or type(message) not in WORKER_REPORTS


def forbidden(kind: NodeType, message: m.Message) -> m.Error:
    """The answer to a message its sender's kind may not send."""
    why = f"a {kind.name.lower()} may not send {message.WIRE_NAME}"
    return m.Error(code=ErrorCode.PermissionDenied, message=why)


def admit(
    hello: m.Handshake, role: str | None, connected: Container[uuid.UUID], info: NodeInfo
) -> tuple[m.HandshakeAck, Peer | None]:
    """The coordinator's answer to *hello* (from a node that proved *role*), and the new
    peer if it is accepted."""
    node = hello.node_info
    version, reason = admission(hello, connected)
    ack = m.HandshakeAck(
        accepted=reason is None, node_id=node.id, coordinator_info=info, reason=reason
    )
    if reason is not None or version is None:
        return ack, None
    return ack, Peer(node.id, node.node_type, version, node.name, role)


def admission(hello: m.Handshake, connected: Container[uuid.UUID]) -> tuple[int | None, str | None]:
    """The version agreed with the node saying *hello*, and why it is refused (None: it
    is accepted). *connected* holds the ids of the nodes connected now."""
    node = hello.node_info
    version = agree_version(NEWEST_VERSION, hello.protocol_version)
    if version is None:
        return None, f"protocol version {hello.protocol_version} is not supported"
    if node.node_type == NodeType.Client and version < 2:
        return version, "clients need protocol version 2"
    if node.node_type == NodeType.Coordinator:
        return version, "this coordinator does not accept coordinator peers"
    if node.id in connected:
        return version, f"node {node.id} is already connected"
    too_long = over_limits(node.name or "", node.capabilities.tags)
    if too_long is not None:
        return version, f"the node's {too_long}"
    return version, None


__all__ = ["WORKER_REPORTS", "Peer", "admission", "admit", "forbidden", "may_send"]
