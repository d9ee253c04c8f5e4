"""The shared types of VistritProtocol v1 (PROTOCOL-v1.md §3), each declared once.

Field order is wire order. Unit enums are ``IntEnum`` s whose values are the variant
indexes (not the reference's explicit Rust discriminants, which bincode ignores). Enums
with fields (``TaskState``, ``TaskPayload``) are a ``WireEnum`` base plus one class per
variant; each variant is also reachable as an attribute of its enum, as in Rust:
``TaskState.Running(worker_id=..., started_at=..., progress=None)``.

Vectors are tuples, so every value is immutable and hashable where its fields are.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.protocol.catalogue`.
"""

from __future__ import annotations

import enum
import uuid
from typing import TYPE_CHECKING, ClassVar

from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.remembered import RememberedValue, remembered_struct
from vistrit.protocol.schema import (
    NodeId,
    TaskId,
    Timestamp,
    WireEnum,
    WireValue,
    i32,
    u8,
    u32,
    u64,
    wire_struct,
    wire_variant,
)
from vistrit.protocol.wire import SocketAddr

__all__ = [
    "ErrorCode",
    "NodeCapabilities",
    "NodeInfo",
    "NodeState",
    "NodeType",
    "SocketAddr",
    "SubmitRefusal",
    "Task",
    "TaskPayload",
    "TaskPriority",
    "TaskResult",
    "TaskState",
]


class NodeType(enum.IntEnum):
    """What a node is. ``Client`` is appended by version 2 (see :mod:`.catalogue`).

    A v1 peer knows only Coordinator and Worker; Vistrit nodes announce ``Client`` only to
    a coordinator they offer version 2 to.
    """

    Coordinator = 0
    Worker = 1
    Client = 2  # v2


class NodeState(enum.IntEnum):
    """What a node says it is doing: Starting, Ready, Busy, Draining or Offline."""

    Starting = 0
    Ready = 1
    Busy = 2
    Draining = 3
    Offline = 4


class TaskPriority(enum.IntEnum):
    """Wire order Low..Critical; a larger value is more urgent."""

    Low = 0
    Normal = 1
    High = 2
    Critical = 3


@wire_struct
class NodeCapabilities(WireValue):
    """What a worker offers: slots, memory, cores and tags."""

    max_concurrent_tasks: u32
    available_memory_bytes: u64
    cpu_cores: u32
    tags: tuple[str, ...] = ()


@wire_struct
class NodeInfo(WireValue):
    """Who a node is: id, kind, address, name, and (for a worker) capabilities and load."""

    id: NodeId
    node_type: NodeType
    address: SocketAddr
    capabilities: NodeCapabilities
    state: NodeState
    running_tasks: u32
    name: str | None
    started_at: Timestamp
    last_heartbeat: Timestamp


def introduce(
    node_id: uuid.UUID,
    node_type: NodeType,
    address: SocketAddr,
    name: str | None,
    now: int,
    capabilities: NodeCapabilities | None = None,
    state: NodeState = NodeState.Ready,
) -> NodeInfo:
    """A node's ``NodeInfo`` as it introduces itself: nothing running, started and seen *now*."""
    return NodeInfo(
        id=node_id,
        node_type=node_type,
        address=address,
        capabilities=capabilities
        or NodeCapabilities(max_concurrent_tasks=0, available_memory_bytes=0, cpu_cores=0),
        state=state,
        running_tasks=0,
        name=name,
        started_at=now,
        last_heartbeat=now,
    )


# -- TaskState ----------------------------------------------------------------------------


class TaskState(WireEnum):
    """Where a task is in its life: Pending, Scheduled, Running, then one final state."""

    __slots__ = ()
    WIRE_NAME = "TaskState"
    if TYPE_CHECKING:  # set at the end of this module; spelled out for type checkers
        Pending: ClassVar[type[Pending]]
        Scheduled: ClassVar[type[Scheduled]]
        Running: ClassVar[type[Running]]
        Completed: ClassVar[type[Completed]]
        Failed: ClassVar[type[Failed]]
        Cancelled: ClassVar[type[Cancelled]]


@wire_variant(0)
class Pending(TaskState):
    """Waiting to be scheduled (or for its dependencies)."""

    pass


@wire_variant(1)
class Scheduled(TaskState):
    """Given to a worker, not yet running."""

    worker_id: NodeId


@wire_variant(2)
class Running(TaskState):
    """Running on a worker, with its progress if reported."""

    worker_id: NodeId
    started_at: Timestamp
    progress: u8 | None


@wire_variant(3)
class Completed(TaskState):
    """Finished with success (final)."""

    worker_id: NodeId
    completed_at: Timestamp
    duration_ms: u64


@wire_variant(4)
class Failed(TaskState):
    """Failed for good, with the error of every attempt (final)."""

    worker_id: NodeId | None
    error: str
    failed_at: Timestamp
    retries: u32


@wire_variant(5)
class Cancelled(TaskState):
    """Cancelled by a client (final)."""

    cancelled_at: Timestamp


# -- TaskPayload --------------------------------------------------------------------------


class TaskPayload(WireEnum):
    """What a task does: a shell command, a named function on bytes, arithmetic, map,
    reduce, or (v4) a Python function called with typed arguments."""

    __slots__ = ()
    WIRE_NAME = "TaskPayload"
    if TYPE_CHECKING:  # set at the end of this module; spelled out for type checkers
        Command: ClassVar[type[Command]]
        Data: ClassVar[type[Data]]
        Compute: ClassVar[type[Compute]]
        Map: ClassVar[type[Map]]
        Reduce: ClassVar[type[Reduce]]
        Call: ClassVar[type[Call]]


@wire_variant(0)
class Command(TaskPayload):
    """Run a program with arguments (on workers started with ``--allow-commands``)."""

    command: str
    args: tuple[str, ...] = ()


@wire_variant(1)
class Data(TaskPayload):
    """Run a named task function on bytes."""

    function: str
    data: bytes


@wire_variant(2)
class Compute(TaskPayload):
    """Evaluate an arithmetic expression."""

    expression: str


@wire_variant(3)
class Map(TaskPayload):
    """Apply a named function to each chunk; the outputs joined with newlines."""

    function: str
    input_chunks: tuple[bytes, ...]


@wire_variant(4)
class Reduce(TaskPayload):
    """Combine results with a named function (fed its dependencies' results if given none)."""

    function: str
    intermediate_results: tuple[bytes, ...]


@wire_variant(5)
class Call(TaskPayload):
    """v4. Call the Python function at ``function`` (``module:name``) with ``arguments``,
    the value encoding (:mod:`vistrit.protocol.values`) of ``(args, kwargs)``. Its result
    travels in the same encoding. Only v4 workers are given it (they announce it)."""

    function: str
    arguments: bytes


for _enum in (TaskState, TaskPayload):
    for _variant in _enum._variants.values():
        setattr(_enum, _variant.__name__, _variant)


# -- Task and TaskResult ------------------------------------------------------------------


@remembered_struct
class Task(RememberedValue):
    """A task: its id, name, payload, state, priority, retries, timeout, tags and dependencies."""

    id: TaskId
    name: str
    payload: TaskPayload
    state: TaskState
    priority: TaskPriority
    max_retries: u32
    timeout_seconds: u64
    tags: tuple[str, ...]
    created_at: Timestamp
    submitted_by: NodeId | None
    dependencies: tuple[TaskId, ...]


@remembered_struct
class TaskResult(RememberedValue):
    """What an attempt produced: success, output or error, exit code, duration, worker."""

    task_id: TaskId
    success: bool
    data: bytes | None
    error: str | None
    exit_code: i32 | None
    duration_ms: u64
    worker_id: NodeId
    stdout: str | None
    stderr: str | None


@wire_struct
class SubmitRefusal(WireValue):
    """v4. A task of a ``TaskSubmitBatch`` that was not accepted, and why."""

    task_id: TaskId
    reason: str
