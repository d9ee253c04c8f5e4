"""Protocol versions: which messages each version's frames may carry, and how peers agree.

The header's version byte selects a :class:`Catalogue`. A catalogue maps type bytes and
payload variant indexes to message classes; a receiver refuses a version it has no
catalogue for (``UnsupportedVersion``) and a type byte its catalogue lacks
(``UnknownMessageType``).

How a later version is added, without changing v1:

1. New messages are appended to ``Message`` with the next free variant index (22, 23, ...)
   and a type byte in their family's free range (connection 0x06-0x0F, task 0x19-0x1F,
   cluster 0x24-0x2F, election 0x33-0x3F, replication 0x40-0x4F, security 0x50-0x5F).
   New variants of an existing enum are appended after the last one.
2. ``V2 = V1.extended(2, [NewMessage, ...])`` and ``CATALOGUES[2] = V2``. Every v1 message
   keeps its shape, variant index and type byte in v2.

Version 2 (``V2`` below) appends ``TaskCancelAck`` (22, 0x19), ``TaskListRequest`` (23, 0x1A),
``TaskListResponse`` (24, 0x1B), ``TaskOutcome`` (25, 0x1C) and the node kind
``NodeType.Client``. Version 3 (``V3``) appends ``Redirect`` (26, 0x06) and the
replication family: ``Replicate`` (27, 0x40), ``ReplicateAck`` (28, 0x41) and
``ReplicaSnapshot`` (29, 0x42). Version 4 (``V4``) appends authentication,
``AuthChallenge`` (30, 0x50), ``AuthResponse`` (31, 0x51) and ``AuthConfirm`` (32, 0x52),
then ``WorkerOffer`` (33, 0x07), ``TaskListQuery`` (34, 0x1D), ``TaskSubmitBatch`` (35,
0x1E), ``TaskSubmitBatchAck`` (36, 0x1F), ``TaskOutcomeAck`` (37, 0x24: the task family's
range is full) and the payload kind ``TaskPayload.Call``.

How two peers agree on a version (the handshake):

* The connecting node sends its ``Handshake`` in a **v1 frame** (every node can read one),
  with ``protocol_version`` set to the newest version it speaks.
* The coordinator answers in a v1 frame. It accepts when it speaks a version the node
  does too; from then on both use :func:`agree_version` of the two: the newest version
  both speak. A reference coordinator accepts only ``protocol_version == 1``; a Vistrit
  node that it refuses retries once with 1, which is the fallback for v1-only peers.
* A frame whose version byte is newer than the agreed one is a protocol error.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.wire`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vistrit.protocol import messages
from vistrit.protocol.errors import UnknownMessageType
from vistrit.protocol.messages import Message


@dataclass(frozen=True)
class Catalogue:
    """The messages one protocol version allows, by type byte and by variant index."""

    version: int
    messages: tuple[type[Message], ...]
    by_type_byte: dict[int, type[Message]] = field(init=False, repr=False, compare=False)
    by_variant: dict[int, type[Message]] = field(init=False, repr=False, compare=False)
    classes: frozenset[type[Message]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_type = {m.TYPE_BYTE: m for m in self.messages}
        by_variant = {m.VARIANT: m for m in self.messages}
        if len(by_type) != len(self.messages) or len(by_variant) != len(self.messages):
            raise ValueError(f"v{self.version}: type bytes and variant indexes must be unique")
        object.__setattr__(self, "by_type_byte", by_type)
        object.__setattr__(self, "by_variant", by_variant)
        object.__setattr__(self, "classes", frozenset(self.messages))

    def extended(self, version: int, new: Iterable[type[Message]]) -> Catalogue:
        """A later version: every message of this one, plus *new* (appended, never changed)."""
        return Catalogue(version, self.messages + tuple(new))

    def message_for_type(self, type_byte: int, offset: int | None = None) -> type[Message]:
        """The message class a header's type byte names in this version; raises
        ``UnknownMessageType`` (at *offset*, the type byte's place in the frame) if none."""
        cls = self.by_type_byte.get(type_byte)
        if cls is None:
            raise UnknownMessageType(
                f"type byte 0x{type_byte:02x} is no message of protocol v{self.version}",
                offset=offset,
            )
        return cls


V1 = Catalogue(
    1,
    (
        messages.Handshake,
        messages.HandshakeAck,
        messages.Heartbeat,
        messages.HeartbeatAck,
        messages.Disconnect,
        messages.TaskSubmit,
        messages.TaskSubmitAck,
        messages.TaskAssign,
        messages.TaskAssignAck,
        messages.TaskStatus,
        messages.TaskResultMessage,
        messages.TaskCancel,
        messages.TaskQuery,
        messages.TaskQueryResponse,
        messages.ClusterStatusRequest,
        messages.ClusterStatusResponse,
        messages.WorkerListRequest,
        messages.WorkerListResponse,
        messages.ElectionStart,
        messages.ElectionVote,
        messages.LeaderAnnounce,
        messages.Error,
    ),
)

#: Version 2: v1 plus the messages Vistrit's own nodes use (``NodeType.Client`` is appended
#: too). A v2 peer still reads and writes every v1 message exactly as v1 does.
V2 = V1.extended(
    2,
    [
        messages.TaskCancelAck,
        messages.TaskListRequest,
        messages.TaskListResponse,
        messages.TaskOutcome,
    ],
)

#: Version 3: v2 plus what coordinators need to work as a group: ``Redirect`` to the leader,
#: and the replication of the leader's journal to its followers.
V3 = V2.extended(
    3,
    [
        messages.Redirect,
        messages.Replicate,
        messages.ReplicateAck,
        messages.ReplicaSnapshot,
    ],
)

#: Version 4: v3 plus authentication (a mutual challenge-response in the handshake, the
#: security range of type bytes, 0x50-0x5F), what a worker offers to run (``WorkerOffer``),
#: Python calls with typed values (the ``TaskPayload.Call`` variant), a paged task list,
#: many tasks submitted in one frame (``TaskSubmitBatch``), and outcomes a client confirms
#: it has, whose payloads the coordinator then lets go (``TaskOutcomeAck``).
V4 = V3.extended(
    4,
    [
        messages.AuthChallenge,
        messages.AuthResponse,
        messages.AuthConfirm,
        messages.WorkerOffer,
        messages.TaskListQuery,
        messages.TaskSubmitBatch,
        messages.TaskSubmitBatchAck,
        messages.TaskOutcomeAck,
    ],
)

#: Every version this implementation speaks, by header version byte.
CATALOGUES: dict[int, Catalogue] = {1: V1, 2: V2, 3: V3, 4: V4}

#: How many messages v1 has: their variants are 0 to V1_VARIANTS - 1, and every later
#: version appends, so a message whose variant is below this is one that every peer reads.
V1_VARIANTS = len(V1.messages)


def frame_version(message: Message, agreed: int) -> int:
    """The version of the frame *message* goes out in on a connection that agreed on
    *agreed*: v1 messages in v1 frames (every peer reads them); newer ones in *agreed*."""
    return 1 if message.VARIANT < V1_VARIANTS else agreed


#: The newest version this implementation speaks.
NEWEST_VERSION = max(CATALOGUES)


def agree_version(ours: int, theirs: int) -> int | None:
    """The newest version both peers speak, or ``None`` if they share none.

    *ours* and *theirs* are each side's newest version; every version from 1 up to a peer's
    newest is assumed spoken by that peer.
    """
    agreed = min(ours, theirs)
    return agreed if agreed >= 1 and agreed in CATALOGUES else None


def first_version(message: type[Message] | Message) -> int:
    """The oldest version whose frames can carry *message* (1 for every v1 message)."""
    cls = message if isinstance(message, type) else type(message)
    return min(v for v, catalogue in CATALOGUES.items() if cls in catalogue.classes)
