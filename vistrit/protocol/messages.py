"""The messages of VistritProtocol v1 (PROTOCOL-v1.md §4), each declared once.

Every frame's payload is the enum ``Message``: a u32 LE variant index, then the fields of
that variant. Each class below says its variant index and the header type byte the sender
writes for it; :mod:`vistrit.protocol.catalogue` collects them per protocol version.

The bully algorithm of the literature (Garcia-Molina, 1982) has three messages; v1 names
them after what they carry:

* *Election* ("I am a candidate, is anyone above me alive?") is :class:`ElectionStart`;
* *Answer* ("I am alive and above you; stand down") is :class:`ElectionVote`;
* *Coordinator* ("I won; I lead from now on") is :class:`LeaderAnnounce`.

Messages 22 to 25 belong to version 2, 26 to 29 to version 3, 30 to 37 to version 4; each
only appends to the one before (see :mod:`vistrit.protocol.catalogue`).

One name clash: the message that carries a :class:`~vistrit.protocol.types.TaskResult` is
also called ``TaskResult`` in the protocol; here it is :class:`TaskResultMessage`, with
``WIRE_NAME = "TaskResult"``.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.types`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import ClassVar, TypeVar

from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.schema import (
    NodeId,
    TaskId,
    Timestamp,
    Uuid,
    WireEnum,
    u8,
    u32,
    u64,
    wire_variant,
)
from vistrit.protocol.types import (
    NodeInfo,
    NodeState,
    SocketAddr,
    SubmitRefusal,
    Task,
    TaskResult,
    TaskState,
)

M = TypeVar("M", bound="Message")


class Message(WireEnum):
    """Base of every message. ``VARIANT`` is the payload's index, ``TYPE_BYTE`` the header's."""

    __slots__ = ()
    WIRE_NAME = "Message"
    TYPE_BYTE: ClassVar[int]


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def wire_message(
    variant: int, type_byte: int, *, wire_name: str | None = None
) -> Callable[[type[M]], type[M]]:
    """Declare a message with its ``Message`` variant index and its header type byte."""

    def declare(cls: type[M]) -> type[M]:
        data_cls = wire_variant(variant, wire_name=wire_name)(cls)
        data_cls.TYPE_BYTE = type_byte
        return data_cls

    return declare


# -- connection (type bytes 0x01-0x0F) ----------------------------------------------------


@wire_message(0, 0x01)
class Handshake(Message):
    """First frame on every connection: who I am, and the newest protocol version I speak."""

    node_info: NodeInfo
    protocol_version: u8


@wire_message(1, 0x02)
class HandshakeAck(Message):
    """The answer to a Handshake: accepted (with the coordinator's NodeInfo) or refused."""

    accepted: bool
    node_id: NodeId
    coordinator_info: NodeInfo | None
    reason: str | None


@wire_message(2, 0x03)
class Heartbeat(Message):
    """A node says it is alive, with its load and state."""

    node_id: NodeId
    timestamp: Timestamp
    running_tasks: u32
    state: NodeState
    cpu_usage: u8 | None
    memory_usage: u8 | None


@wire_message(3, 0x04)
class HeartbeatAck(Message):
    """The coordinator's answer to a heartbeat, echoing its timestamp."""

    coordinator_id: NodeId
    echo_timestamp: Timestamp
    coordinator_timestamp: Timestamp


@wire_message(4, 0x05)
class Disconnect(Message):
    """A node leaves; ``graceful``: its unfinished tasks are handed back, not lost."""

    node_id: NodeId
    reason: str
    graceful: bool


# -- tasks (type bytes 0x10-0x1F) ---------------------------------------------------------


@wire_message(5, 0x10)
class TaskSubmit(Message):
    """A client submits a task (its id chosen by the client); also a journal record."""

    task: Task
    request_id: Uuid


@wire_message(6, 0x11)
class TaskSubmitAck(Message):
    """The coordinator accepted a task (it is recorded) or refused it, with why."""

    request_id: Uuid
    accepted: bool
    task_id: TaskId | None
    reason: str | None


@wire_message(7, 0x12)
class TaskAssign(Message):
    """The coordinator gives a task to a worker."""

    task: Task


@wire_message(8, 0x13)
class TaskAssignAck(Message):
    """A worker accepts an assignment, or refuses it (no free slot, draining)."""

    task_id: TaskId
    accepted: bool
    worker_id: NodeId
    reason: str | None


@wire_message(9, 0x14)
class TaskStatus(Message):
    """A worker reports a task's state: running, and its progress."""

    task_id: TaskId
    worker_id: NodeId
    state: TaskState
    progress: u8 | None
    message: str | None


@wire_message(10, 0x15, wire_name="TaskResult")
class TaskResultMessage(Message):
    """A worker reports a task's result: its output or its error."""

    result: TaskResult


@wire_message(11, 0x16)
class TaskCancel(Message):
    """Cancel a task: from a client to the coordinator, or from it to the task's worker."""

    task_id: TaskId
    requested_by: NodeId
    reason: str | None


@wire_message(12, 0x17)
class TaskQuery(Message):
    """Ask what is known of one task."""

    task_id: TaskId


@wire_message(13, 0x18)
class TaskQueryResponse(Message):
    """What is known of one task: its state and result, or not found."""

    task_id: TaskId
    found: bool
    task: Task | None
    result: TaskResult | None


# -- cluster (type bytes 0x20-0x2F) -------------------------------------------------------


@wire_message(14, 0x20)
class ClusterStatusRequest(Message):
    """Ask for the cluster's counts."""

    request_id: Uuid


@wire_message(15, 0x21)
class ClusterStatusResponse(Message):
    """The cluster's counts: nodes, workers online, tasks by state, uptime."""

    request_id: Uuid
    leader_id: NodeId | None
    total_nodes: u32
    online_workers: u32
    pending_tasks: u32
    running_tasks: u32
    completed_tasks: u64
    failed_tasks: u64
    uptime_seconds: u64


@wire_message(16, 0x22)
class WorkerListRequest(Message):
    """Ask for the workers."""

    request_id: Uuid


@wire_message(17, 0x23)
class WorkerListResponse(Message):
    """The workers, each with its live state and load."""

    request_id: Uuid
    workers: tuple[NodeInfo, ...]


# -- election (type bytes 0x30-0x3F): the bully algorithm's three messages ----------------


@wire_message(18, 0x30)
class ElectionStart(Message):
    """The bully algorithm's *Election*: a candidate challenges the coordinators above it."""

    term: u64
    candidate_id: NodeId
    priority: u32


@wire_message(19, 0x31)
class ElectionVote(Message):
    """The bully algorithm's *Answer*: a higher-ranked coordinator is alive and takes over."""

    term: u64
    voter_id: NodeId
    vote_for: NodeId


@wire_message(20, 0x32)
class LeaderAnnounce(Message):
    """The bully algorithm's *Coordinator*: the winner tells everyone it leads this term."""

    term: u64
    leader_id: NodeId
    leader_address: SocketAddr


# -- errors (type byte 0xE0) --------------------------------------------------------------


@wire_message(21, 0xE0)
class Error(Message):
    """A refusal or failure; after a protocol error the sender closes the connection."""

    code: ErrorCode
    message: str
    entity_id: str | None = None
    details: str | None = None


# -- version 2: appended, never changing v1 -----------------------------------------------


@wire_message(22, 0x19)
class TaskCancelAck(Message):
    """v2. The answer to ``TaskCancel``: ``accepted`` if the task was cancelled (pending) or
    its worker was told to stop it (running); otherwise ``reason`` says why not."""

    task_id: TaskId
    accepted: bool
    reason: str | None = None


@wire_message(23, 0x1A)
class TaskListRequest(Message):
    """v2. Ask for the newest tasks the coordinator knows, at most ``limit`` of them."""

    request_id: Uuid
    limit: u32


@wire_message(24, 0x1B)
class TaskListResponse(Message):
    """v2. Tasks, newest first, each with its current state."""

    request_id: Uuid
    tasks: tuple[Task, ...]


@wire_message(25, 0x1C)
class TaskOutcome(Message):
    """v2. Pushed to the client that submitted a task, once the task's state is final:
    Completed (with its result), Failed (with every attempt's error) or Cancelled."""

    task_id: TaskId
    state: TaskState
    result: TaskResult | None


# -- version 3: leader election and replication between coordinators ---------------------


@wire_message(26, 0x06)
class Redirect(Message):
    """v3. A coordinator that does not lead refuses a worker or a client with this instead
    of a ``HandshakeAck``, and closes the connection: go to ``leader_address`` (``None``
    while an election is under way: try again shortly). A v1 peer gets an ``Error`` of code
    ``Unavailable`` naming the leader instead."""

    term: u64
    leader_id: NodeId | None
    leader_address: SocketAddr | None
    reason: str


@wire_message(27, 0x40)
class Replicate(Message):
    """v3. The leader's journal records, sent to each follower: complete frames
    (``TaskSubmit``, ``TaskOutcome``) exactly as the leader's journal holds them. ``index``
    numbers the first record in this term's stream (the records after a snapshot count
    from its ``index`` + 1). With no records it is the leader's heartbeat."""

    term: u64
    leader_id: NodeId
    index: u64
    records: tuple[bytes, ...]


@wire_message(28, 0x41)
class ReplicateAck(Message):
    """v3. A follower's answer: ``accepted`` with the last index it holds (on its disk),
    or refused, with the newest term it knows (the sender is deposed) or with a gap in the
    stream (the leader sends a snapshot)."""

    term: u64
    follower_id: NodeId
    index: u64
    accepted: bool


@wire_message(29, 0x42)
class ReplicaSnapshot(Message):
    """v3. Everything the leader remembers, as of record ``index``, in parts that fit a
    frame: part 0 replaces the follower's copy, ``last`` completes it. Sent to a follower
    that joins, that falls behind, and to every follower at the start of a term."""

    term: u64
    leader_id: NodeId
    index: u64
    part: u32
    last: bool
    records: tuple[bytes, ...]


# -- version 4: authentication ------------------------------------------------------------


@wire_message(30, 0x50)
class AuthChallenge(Message):
    """v4. The coordinator's answer to a v4 ``Handshake``: prove you hold a credential.
    ``nonce`` is 32 fresh random bytes (see :mod:`vistrit.logic.auth`)."""

    nonce: bytes


@wire_message(31, 0x51)
class AuthResponse(Message):
    """v4. The node's proof: the ``role`` of its credential, its own fresh ``nonce``, and
    ``proof``, an HMAC-SHA256 over both nonces, the role, the version and its node id."""

    role: str
    nonce: bytes
    proof: bytes


@wire_message(32, 0x52)
class AuthConfirm(Message):
    """v4. The coordinator's proof that it holds the same secret (a ``HandshakeAck``, or a
    ``Redirect``, follows). A node believes nothing a coordinator says before this."""

    proof: bytes


# -- version 4: what a worker can run -----------------------------------------------------


@wire_message(33, 0x07)
class WorkerOffer(Message):
    """v4. What a worker can run, sent right after it joins: its task functions by name
    (``Data``, ``Map``), its reduce functions, the modules whose functions it may call
    (``Call``), and the programs it may run (``Command``). The coordinator gives a worker
    only tasks it offers to run; a v4 worker is given none before its offer."""

    functions: tuple[str, ...]
    reduce_functions: tuple[str, ...]
    modules: tuple[str, ...]
    commands: tuple[str, ...]


@wire_message(34, 0x1D)
class TaskListQuery(Message):
    """v4. A page of the tasks the coordinator remembers, newest first: those in ``state``
    (its name, ``"Running"``; ``None``: every state), skipping the ``offset`` newest, at
    most ``limit`` (0: as many as one answer carries). Answered by ``TaskListResponse``."""

    request_id: Uuid
    state: str | None
    offset: u32
    limit: u32


# -- version 4: many tasks in one frame ---------------------------------------------------


@wire_message(35, 0x1E)
class TaskSubmitBatch(Message):
    """v4. Several tasks in one frame (``client.map``). Each is taken as its own
    ``TaskSubmit`` would be, in order: idempotently by id, accepted or refused on its own.
    One ``TaskSubmitBatchAck`` answers them all. At most 10,000 tasks."""

    request_id: Uuid
    tasks: tuple[Task, ...]


@wire_message(36, 0x1F)
class TaskSubmitBatchAck(Message):
    """v4. The answer to a ``TaskSubmitBatch``: how many of its tasks were accepted, and
    each one that was not, with why (a whole batch refused lists every task)."""

    request_id: Uuid
    accepted: u32
    refused: tuple[SubmitRefusal, ...]


# -- version 4: payloads let go once delivered --------------------------------------------


@wire_message(37, 0x24)
class TaskOutcomeAck(Message):
    """v4. A client has the outcomes of these tasks, its own: the coordinator may stop
    holding their large inputs and results (it journals and replicates the release). No
    answer. At most 10,000 ids; the task family's type bytes are all taken, so it has the
    cluster family's first free one."""

    task_ids: tuple[TaskId, ...]
