"""The coordinator's answers to read-only requests, built from its task store and registry.

A ``TaskQuery``, ``TaskListRequest``, ``ClusterStatusRequest`` or ``WorkerListRequest``
changes nothing: it is answered from what the coordinator remembers. Their handlers
(``on_query`` ...) are here, in the core's table (:data:`vistrit.coordinator.core.HANDLERS`)
like every other handler, and so are the messages the core builds from its records
(``TaskOutcome``, ``TaskSubmitAck``), so that :mod:`vistrit.coordinator.core` keeps only
what decides a task's fate.

Every answer must fit in one frame: a task's input bytes are left out of a query's answer
when input and output together would pass :data:`QUERY_BYTES`, and listings never carry
payload bytes.

This module never touches sockets, threads or clocks. Read next:
:mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from vistrit.coordinator.membership import Peer
from vistrit.coordinator.offers import pending_status
from vistrit.defaults import TASK_LIST_LIMIT
from vistrit.logic.registry import Registry
from vistrit.logic.store import TaskStore, payload_bytes, result_bytes
from vistrit.logic.tasks import PENDING, RUNNING, SCHEDULED, STATES, TaskRecord
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import Task, TaskPayload

#: A TaskQueryResponse carries the task's input bytes only while input and output together
#: stay under this, well inside the 16 MiB frame cap; beyond it the input is left out.
QUERY_BYTES = 12 * 1024 * 1024


def outcome(record: TaskRecord) -> m.TaskOutcome:
    """A finished task's outcome: for its client, and for the journal."""
    return m.TaskOutcome(task_id=record.id, state=record.state, result=record.result)


def submit_ack(submit: m.TaskSubmit, accepted: bool, reason: str | None) -> m.TaskSubmitAck:
    """The answer to a ``TaskSubmit``: accepted (naming the task) or refused, with why."""
    return m.TaskSubmitAck(
        request_id=submit.request_id,
        accepted=accepted,
        task_id=submit.task.id if accepted else None,
        reason=reason,
    )


def query_response(store: TaskStore, task_id: uuid.UUID) -> m.TaskQueryResponse:
    """What is known of one task: its state and result (its input, if it fits)."""
    record = store.view(task_id)
    if record is None:
        return m.TaskQueryResponse(task_id=task_id, found=False, task=None, result=None)
    task = record.snapshot()
    if payload_bytes(task.payload) + result_bytes(record) > QUERY_BYTES:
        task = summary(record)  # the input and the output would not fit in one frame
    return m.TaskQueryResponse(task_id=task_id, found=True, task=task, result=record.result)


class Known(Protocol):
    """What the read-only handlers read of the coordinator's core."""

    store: TaskStore
    registry: Registry
    coordinators: int
    started_at: float

    @property
    def id(self) -> uuid.UUID:
        """The coordinator's node id."""
        ...


#: A read-only handler's outbox: the one answer, to the asking peer.
Answer = list[tuple[uuid.UUID, m.Message]]


def on_query(core: Known, peer: Peer, query: m.TaskQuery, now: float) -> Answer:
    """What is known of one task; a v4 asker first hears why it waits, if it does."""
    record = core.store.view(query.task_id)
    answer: Answer = []
    if record is not None and record.waiting and peer.version >= 4:
        answer.append((peer.id, pending_status(core.id, record)))
    return [*answer, (peer.id, query_response(core.store, query.task_id))]


def on_task_list(core: Known, peer: Peer, request: m.TaskListRequest, now: float) -> Answer:
    """The newest tasks, at most ``request.limit`` (and :data:`TASK_LIST_LIMIT`), without
    their payloads."""
    limit = min(request.limit or TASK_LIST_LIMIT, TASK_LIST_LIMIT)
    tasks = tuple(summary(r) for r in core.store.newest(limit))
    return [(peer.id, m.TaskListResponse(request_id=request.request_id, tasks=tasks))]


def on_task_list_query(core: Known, peer: Peer, query: m.TaskListQuery, now: float) -> Answer:
    """A page of the tasks (v4): those in ``query.state``, after ``query.offset``, at most
    ``query.limit`` (and :data:`TASK_LIST_LIMIT`), without their payloads."""
    if query.state is not None and query.state not in STATES:
        why = f"unknown state {query.state[:40]!r}; choose from {', '.join(STATES)}"
        return [(peer.id, m.Error(code=ErrorCode.InvalidRequest, message=why))]
    limit = min(query.limit or TASK_LIST_LIMIT, TASK_LIST_LIMIT)
    records = core.store.newest(limit, query.offset, query.state)
    tasks = tuple(summary(r) for r in records)
    return [(peer.id, m.TaskListResponse(request_id=query.request_id, tasks=tasks))]


def on_cluster_status(
    core: Known, peer: Peer, request: m.ClusterStatusRequest, now: float
) -> Answer:
    """The cluster's counts: nodes (the coordinators reached, and the workers online),
    tasks by state."""
    online = len(core.registry.eligible())
    store = core.store
    response = m.ClusterStatusResponse(
        request_id=request.request_id,
        leader_id=core.id,
        total_nodes=core.coordinators + online,
        online_workers=online,
        pending_tasks=store.count(PENDING),
        running_tasks=store.count(SCHEDULED, RUNNING),
        completed_tasks=store.completed_total,
        failed_tasks=store.failed_total,
        uptime_seconds=max(0, int(now - core.started_at)),
    )
    return [(peer.id, response)]


def on_worker_list(core: Known, peer: Peer, request: m.WorkerListRequest, now: float) -> Answer:
    """The workers (those that have heartbeat), with their live state and load."""
    workers = tuple(w.node_info(int(w.last_seen)) for w in core.registry.eligible())
    return [(peer.id, m.WorkerListResponse(request_id=request.request_id, workers=workers))]


def cancel_ack(version: int, store: TaskStore, task_id: uuid.UUID, how: str) -> m.Message:
    """A cancel that was done: a ``TaskCancelAck`` saying *how* (v2 and up), or the task's
    state, as the reference coordinator answers (v1)."""
    if version >= 2:
        return m.TaskCancelAck(task_id=task_id, accepted=True, reason=how)
    return query_response(store, task_id)


def cancel_refusal(version: int, task_id: uuid.UUID, why: str) -> m.Message:
    """A cancel that cannot be done: a ``TaskCancelAck`` refusing it (v2 and up), or the
    ``Error`` the reference coordinator answers (v1)."""
    if version >= 2:
        return m.TaskCancelAck(task_id=task_id, accepted=False, reason=why)
    return m.Error(
        code=ErrorCode.TaskNotFound,
        message="Task not found or already completed",
        entity_id=str(task_id),
    )


def live_records(store: TaskStore) -> list[m.Message]:
    """The journal's content for what is remembered now: each task's submission, and its
    outcome if it has one, in submission order (to compact a journal, or as a snapshot)."""
    entries: list[m.Message] = []
    for record in sorted(store.each(), key=lambda r: r.sequence):
        entries.append(m.TaskSubmit(task=record.task, request_id=uuid.UUID(int=0)))
        if record.finished:
            entries.append(outcome(record))
    return entries


def summary(record: TaskRecord) -> Task:
    """A task for listing: its state, without its payload's bytes (they may be large)."""
    payload = record.task.payload
    if isinstance(payload, TaskPayload.Data):
        payload = TaskPayload.Data(function=payload.function, data=b"")
    elif isinstance(payload, TaskPayload.Map):
        payload = TaskPayload.Map(function=payload.function, input_chunks=())
    elif isinstance(payload, TaskPayload.Reduce):
        payload = TaskPayload.Reduce(function=payload.function, intermediate_results=())
    elif isinstance(payload, TaskPayload.Call):
        payload = TaskPayload.Call(function=payload.function, arguments=b"")
    return record.with_payload(payload)


__all__ = [
    "QUERY_BYTES",
    "Known",
    "cancel_ack",
    "cancel_refusal",
    "live_records",
    "on_cluster_status",
    "on_query",
    "on_task_list",
    "on_task_list_query",
    "on_worker_list",
    "outcome",
    "query_response",
    "submit_ack",
    "summary",
]
