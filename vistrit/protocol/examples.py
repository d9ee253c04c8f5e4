"""One example of every v1 message, with fixed ids and times, for the docs, tests and benches.

The values follow a task's life on a small cluster: a worker joins, a client submits a
word count, the coordinator assigns it, the worker reports, the client asks. The docs
encode each example at build time and show its byte table, so the tables never drift
from the code.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import dataclasses
import uuid

from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.frame import encode_frame
from vistrit.protocol.types import (
    NodeCapabilities,
    NodeInfo,
    NodeState,
    NodeType,
    SocketAddr,
    SubmitRefusal,
    Task,
    TaskPayload,
    TaskPriority,
    TaskResult,
    TaskState,
)

WORKER_ID = uuid.UUID("144dedf9-e70c-47ac-a12b-37c579917c64")
COORDINATOR_ID = uuid.UUID("ff76f734-8d72-4ff6-92f9-f29b42198712")
CLIENT_ID = uuid.UUID("8ac9de9a-804c-4aba-a4ff-0a01859a0efb")
TASK_ID = uuid.UUID("6b355bc7-daac-434e-b13e-f0621cf4841b")
REQUEST_ID = uuid.UUID("9fb6273b-7a41-43e7-8042-9e04faa13427")
NOW = 1_795_683_070  # 2026-11-26 08:51:10 UTC

WORKER = NodeInfo(
    id=WORKER_ID,
    node_type=NodeType.Worker,
    address=SocketAddr("127.0.0.1", 47028),
    capabilities=NodeCapabilities(
        max_concurrent_tasks=4, available_memory_bytes=1 << 30, cpu_cores=2, tags=("linux",)
    ),
    state=NodeState.Ready,
    running_tasks=0,
    name="worker-a",
    started_at=NOW,
    last_heartbeat=NOW,
)
COORDINATOR = NodeInfo(
    id=COORDINATOR_ID,
    node_type=NodeType.Coordinator,
    address=SocketAddr("127.0.0.1", 7878),
    capabilities=NodeCapabilities(max_concurrent_tasks=0, available_memory_bytes=0, cpu_cores=2),
    state=NodeState.Ready,
    running_tasks=0,
    name="coordinator-1",
    started_at=NOW - 60,
    last_heartbeat=NOW,
)


def word_count_task(text: bytes = b"to be or not to be") -> Task:
    """A pending word-count task, as a client submits it."""
    return Task(
        id=TASK_ID,
        name="count words",
        payload=TaskPayload.Data(function="word_count", data=text),
        state=TaskState.Pending(),
        priority=TaskPriority.Normal,
        max_retries=3,
        timeout_seconds=30,
        tags=(),
        created_at=NOW,
        submitted_by=CLIENT_ID,
        dependencies=(),
    )


RESULT = TaskResult(
    task_id=TASK_ID,
    success=True,
    data=b"6",
    error=None,
    exit_code=None,
    duration_ms=2,
    worker_id=WORKER_ID,
    stdout=None,
    stderr=None,
)


def all_examples() -> dict[str, m.Message]:
    """One example per v1 message, by wire name, in variant order."""
    task = word_count_task()
    done = TaskState.Completed(worker_id=WORKER_ID, completed_at=NOW + 1, duration_ms=2)
    examples: list[m.Message] = [
        m.Handshake(node_info=WORKER, protocol_version=1),
        m.HandshakeAck(accepted=True, node_id=WORKER_ID, coordinator_info=COORDINATOR, reason=None),
        m.Heartbeat(
            node_id=WORKER_ID,
            timestamp=NOW,
            running_tasks=1,
            state=NodeState.Busy,
            cpu_usage=37,
            memory_usage=None,
        ),
        m.HeartbeatAck(
            coordinator_id=COORDINATOR_ID, echo_timestamp=NOW, coordinator_timestamp=NOW
        ),
        m.Disconnect(node_id=WORKER_ID, reason="shutting down", graceful=True),
        m.TaskSubmit(task=task, request_id=REQUEST_ID),
        m.TaskSubmitAck(request_id=REQUEST_ID, accepted=True, task_id=TASK_ID, reason=None),
        m.TaskAssign(task=task),
        m.TaskAssignAck(task_id=TASK_ID, accepted=True, worker_id=WORKER_ID, reason=None),
        m.TaskStatus(
            task_id=TASK_ID,
            worker_id=WORKER_ID,
            state=TaskState.Running(worker_id=WORKER_ID, started_at=NOW, progress=50),
            progress=50,
            message="halfway",
        ),
        m.TaskResultMessage(result=RESULT),
        m.TaskCancel(task_id=TASK_ID, requested_by=CLIENT_ID, reason="no longer needed"),
        m.TaskQuery(task_id=TASK_ID),
        m.TaskQueryResponse(
            task_id=TASK_ID,
            found=True,
            task=dataclasses.replace(task, state=done),
            result=RESULT,
        ),
        m.ClusterStatusRequest(request_id=REQUEST_ID),
        m.ClusterStatusResponse(
            request_id=REQUEST_ID,
            leader_id=COORDINATOR_ID,
            total_nodes=3,
            online_workers=2,
            pending_tasks=5,
            running_tasks=2,
            completed_tasks=120,
            failed_tasks=1,
            uptime_seconds=3600,
        ),
        m.WorkerListRequest(request_id=REQUEST_ID),
        m.WorkerListResponse(request_id=REQUEST_ID, workers=(WORKER,)),
        m.ElectionStart(term=7, candidate_id=COORDINATOR_ID, priority=2),
        m.ElectionVote(term=7, voter_id=WORKER_ID, vote_for=COORDINATOR_ID),
        m.LeaderAnnounce(
            term=7, leader_id=COORDINATOR_ID, leader_address=SocketAddr("127.0.0.1", 7878)
        ),
        m.Error(
            code=ErrorCode.TaskNotFound,
            message="Task not found or already completed",
            entity_id=str(TASK_ID),
            details=None,
        ),
    ]
    return {type(message).WIRE_NAME: message for message in examples}


def v2_examples() -> dict[str, m.Message]:
    """One example of each message version 2 adds, by wire name."""
    examples: list[m.Message] = [
        m.TaskCancelAck(task_id=TASK_ID, accepted=True, reason="cancelled before it ran"),
        m.TaskListRequest(request_id=REQUEST_ID, limit=20),
        m.TaskListResponse(request_id=REQUEST_ID, tasks=(word_count_task(b""),)),
        m.TaskOutcome(
            task_id=TASK_ID,
            state=TaskState.Completed(worker_id=WORKER_ID, completed_at=NOW + 1, duration_ms=2),
            result=RESULT,
        ),
    ]
    return {type(message).WIRE_NAME: message for message in examples}


def v3_examples() -> dict[str, m.Message]:
    """One example of each message version 3 adds, by wire name."""
    submit = encode_frame(m.TaskSubmit(task=word_count_task(b"a b c"), request_id=REQUEST_ID), 1)
    examples: list[m.Message] = [
        m.Redirect(
            term=7,
            leader_id=COORDINATOR_ID,
            leader_address=SocketAddr("127.0.0.1", 7878),
            reason="not the leader",
        ),
        m.Replicate(term=7, leader_id=COORDINATOR_ID, index=42, records=(submit,)),
        m.ReplicateAck(term=7, follower_id=WORKER_ID, index=42, accepted=True),
        m.ReplicaSnapshot(
            term=7, leader_id=COORDINATOR_ID, index=41, part=0, last=True, records=(submit,)
        ),
    ]
    return {type(message).WIRE_NAME: message for message in examples}


def v4_examples() -> dict[str, m.Message]:
    """One example of each message version 4 adds (authentication, what a worker offers),
    by wire name. The nonces and proofs are made-up bytes: a real exchange draws fresh ones
    every time."""
    examples: list[m.Message] = [
        m.AuthChallenge(nonce=bytes(range(32))),
        m.AuthResponse(role="worker", nonce=bytes(range(32, 64)), proof=bytes(range(64, 96))),
        m.AuthConfirm(proof=bytes(range(96, 128))),
        m.WorkerOffer(
            functions=("echo", "shout"),
            reduce_functions=("sum",),
            modules=("mytasks",),
            commands=(),
        ),
        m.TaskListQuery(
            request_id=uuid.UUID("00000000-0000-4000-8000-000000000034"),
            state="Running",
            offset=0,
            limit=20,
        ),
        m.TaskSubmitBatch(
            request_id=uuid.UUID("00000000-0000-4000-8000-000000000035"),
            tasks=tuple(
                dataclasses.replace(
                    word_count_task(text),
                    id=uuid.UUID(f"00000000-0000-4000-8000-00000000003{n}"),
                    name=f"part {n}",
                )
                for n, text in enumerate((b"to be", b"or not"), 5)
            ),
        ),
        m.TaskSubmitBatchAck(
            request_id=uuid.UUID("00000000-0000-4000-8000-000000000035"),
            accepted=1,
            refused=(
                SubmitRefusal(
                    task_id=uuid.UUID("00000000-0000-4000-8000-000000000036"),
                    reason="quota: 250000 unfinished tasks per client",
                ),
            ),
        ),
        m.TaskOutcomeAck(task_ids=(uuid.UUID("00000000-0000-4000-8000-000000000035"),)),
    ]
    return {type(message).WIRE_NAME: message for message in examples}
