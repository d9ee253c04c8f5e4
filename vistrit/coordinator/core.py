"""What the coordinator decides: one message in, the messages to send out.

:class:`CoordinatorCore` holds the task store, the worker registry and the scheduler, and
has one handler per message kind, found through :data:`HANDLERS` (a table, not a chain of
ifs). Each handler takes the sending peer, the message and ``now`` (Unix seconds) and
returns an *outbox*: ``[(node_id, message), ...]``. It never touches a socket, a thread or
a clock; :mod:`vistrit.coordinator.server` calls it under one lock and delivers the outbox.

What happens to a task (see :mod:`vistrit.logic.tasks` for the state table):

1. ``TaskSubmit`` records it (idempotently: a known id is acknowledged again), queues it
   or makes it wait for its dependencies, and acknowledges it.
2. Scheduling gives ready tasks to workers with free slots (``TaskAssign``). A ``Reduce``
   with dependencies and no inputs of its own is fed their results, in order.
3. The worker's ``TaskStatus`` marks it Running (for a v1 worker, already its
   ``TaskAssignAck``, since it runs what it accepts at once, while a v2 worker may hold a
   prefetched task in its queue); a refusal puts it back in the queue for another worker.
4. ``TaskResult`` completes it, or retries it while ``max_retries`` allows, or fails it with
   the error of every attempt. The submitting client (a v2 ``Client``) is sent the
   outcome, a ``TaskOutcome``; results stay queryable for the retention time.
5. A worker that goes away gives its tasks back to the queue (at-least-once execution);
   a late or duplicate report is ignored, so each task has exactly one outcome.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import dataclasses
import heapq
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vistrit.defaults import DEFAULT_POLICY, Policy
from vistrit.logic.registry import Registry
from vistrit.logic.scheduler import Chooser, Scheduler
from vistrit.logic.tasks import (
    PENDING,
    RUNNING,
    SCHEDULED,
    IllegalTransition,
    TaskRecord,
    TaskStore,
)
from vistrit.protocol import encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import NEWEST_VERSION, agree_version
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import NodeInfo, NodeType, TaskPayload, TaskResult, TaskState

Outbox = list[tuple[uuid.UUID, m.Message]]

#: How long a worker that refused a task is not offered that task again. Heartbeats
#: retry scheduling, so a refusal for a passing reason (a full worker) costs about this.
REFUSAL_PAUSE = 1.0

#: A TaskQueryResponse carries the task's input bytes only while input and output together
#: stay under this, well inside the 16 MiB frame cap; beyond it the input is left out.
QUERY_BYTES = 12 * 1024 * 1024

#: The most tasks one TaskListResponse carries.
TASK_LIST_LIMIT = 1000


@dataclass
class Peer:
    """One handshaken connection: who it is, what it is, and the version agreed with it."""

    id: uuid.UUID
    kind: NodeType
    version: int
    name: str | None


class CoordinatorCore:
    """The coordinator's state and decisions (see the module docstring)."""

    def __init__(
        self,
        info: NodeInfo,
        *,
        started_at: float,
        policy: Policy = DEFAULT_POLICY,
        rng: Chooser | None = None,
    ) -> None:
        self.info = info
        self.policy = policy
        self._rng = rng
        #: Frames for the journal (TaskSubmit, TaskOutcome), taken by the server before it
        #: sends the outbox that depends on them.
        self.journal: list[m.Message | bytes] = []  # bytes: a record already encoded
        self._handed_back: set[uuid.UUID] = set()  # workers that said a graceful goodbye
        self._retries: list[tuple[float, int, uuid.UUID]] = []  # (when, sequence, task)
        self._deadlines: list[tuple[float, int, uuid.UUID]] = []  # (deadline, sequence, task)
        # (deadline, sequence, task, worker): assignments that must be acknowledged by then
        self._ack_deadlines: list[tuple[float, int, uuid.UUID, uuid.UUID]] = []
        self.started_at = started_at
        self.store = TaskStore()
        self.registry = Registry()
        self.scheduler = Scheduler(policy.strategy, rng)
        self.peers: dict[uuid.UUID, Peer] = {}
        self.coordinators = 1  # this one, and the others of its cluster it reaches
        #: In a cluster, the largest TaskSubmit frame accepted: its record must fit inside
        #: a Replicate frame. None: no limit but the frame cap.
        self.record_limit: int | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.info.id

    # -- joining and leaving ----------------------------------------------------------------

    def join(self, hello: m.Handshake, now: float) -> tuple[m.HandshakeAck, Peer | None]:
        """Answer a Handshake: accept the node (returning its Peer) or refuse it with a reason."""
        node = hello.node_info
        version = agree_version(NEWEST_VERSION, hello.protocol_version)
        reason = None
        if version is None:
            reason = f"protocol version {hello.protocol_version} is not supported"
        elif node.node_type == NodeType.Client and version < 2:
            reason = "clients need protocol version 2"
        elif node.node_type == NodeType.Coordinator:
            reason = "this coordinator does not accept coordinator peers"
        elif node.id in self.peers:
            reason = f"node {node.id} is already connected"
        if reason is not None or version is None:
            return self._handshake_ack(node.id, reason), None
        peer = Peer(node.id, node.node_type, version, node.name)
        self.peers[node.id] = peer
        if node.node_type == NodeType.Worker:
            self.registry.add(node, now, prefetch=self.policy.prefetch if version >= 2 else 0)
        return self._handshake_ack(node.id, None), peer

    def _handshake_ack(self, node_id: uuid.UUID, reason: str | None) -> m.HandshakeAck:
        return m.HandshakeAck(
            accepted=reason is None, node_id=node_id, coordinator_info=self.info, reason=reason
        )

    def leave(self, peer_id: uuid.UUID, now: float) -> Outbox:
        """A connection ended (or its worker was declared dead): forget the peer.

        A worker's unfinished tasks go back to the queue, after a backoff if they had
        started there. A started task that has lost more than ``max_lost_workers`` workers
        is failed as a poison task; lost workers do not use up the task's own retries.
        """
        self.peers.pop(peer_id, None)
        graceful = peer_id in self._handed_back
        self._handed_back.discard(peer_id)
        entry = self.registry.remove(peer_id)
        if entry is None:
            return []
        outbox: Outbox = []
        name = entry.info.name or str(peer_id)
        for task_id in sorted(entry.running, key=str):
            record = self.store.get(task_id)
            if record is None or record.worker != peer_id or record.finished:
                continue
            record.attempts -= 1  # the task is not to blame: its retries are not used up
            if record.status == SCHEDULED or graceful:  # never started there, or handed back
                record.apply("lose", TaskState.Pending(), now)
                self.scheduler.requeue(record)
                continue
            record.lost_workers += 1
            record.errors.append(f"lost its worker {name}")
            if record.lost_workers > self.policy.max_lost_workers:
                error = f"lost {record.lost_workers} workers while running: " + _attempt_errors(
                    record
                )
                outbox += self._fail(record, error, None, now)
            else:
                record.apply("lose", TaskState.Pending(), now)
                pause = self.backoff(record.lost_workers)
                heapq.heappush(self._retries, (now + pause, record.sequence, record.id))
        return outbox + self.schedule(now)

    def tick(self, now: float) -> tuple[Outbox, list[uuid.UUID]]:
        """The passing of time: silent workers, overdue attempts, retries that are due.

        Returns what to send, and the workers declared dead (the server closes them).
        """
        dead = self.silent_workers(now)
        outbox: Outbox = []
        for worker_id in dead:
            outbox += self.leave(worker_id, now)
        outbox += self._expire_attempts(now)
        outbox += self._expire_assignments(now)
        while self._retries and self._retries[0][0] <= now:
            _, _, task_id = heapq.heappop(self._retries)
            record = self.store.get(task_id)
            if record is not None and record.status == PENDING:  # not cancelled meanwhile
                self.scheduler.requeue(record)
        return outbox + self.schedule(now), dead

    def silent_workers(self, now: float) -> list[uuid.UUID]:
        """Workers not heard from for longer than the heartbeat timeout."""
        return [
            w.id
            for w in self.registry.workers.values()
            if w.eligible and now - w.last_seen > self.policy.heartbeat_timeout
        ]

    def _expire_attempts(self, now: float) -> Outbox:
        """Fail attempts that passed ``timeout_seconds``; their workers are told to stop."""
        outbox: Outbox = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, task_id = heapq.heappop(self._deadlines)
            record = self.store.get(task_id)
            if record is None or record.deadline != deadline or record.status != RUNNING:
                continue  # finished, or a later attempt with its own deadline
            timeout = record.task.timeout_seconds
            if record.worker is not None:
                stop = m.TaskCancel(task_id=record.id, requested_by=self.id, reason="timed out")
                outbox.append((record.worker, stop))
            outbox += self._attempt_failed(record, f"timed out after {timeout} s", None, now)
        return outbox

    def _expire_assignments(self, now: float) -> Outbox:
        """An assignment never acknowledged (lost, or ignored by a live worker) is taken
        back, as if refused: the task goes to another worker, never stuck in Scheduled."""
        while self._ack_deadlines and self._ack_deadlines[0][0] <= now:
            _, _, task_id, worker_id = heapq.heappop(self._ack_deadlines)
            record = self.store.get(task_id)
            if (
                record is None
                or record.worker != worker_id
                or record.status != SCHEDULED
                or record.acknowledged
            ):
                continue
            entry = self.registry.get(worker_id)
            if entry is not None:
                entry.running.discard(task_id)
            record.excluded[worker_id] = now + REFUSAL_PAUSE
            record.attempts -= 1
            record.apply("reject", TaskState.Pending(), now)
            self.scheduler.requeue(record)
        return []

    def _attempt_failed(
        self, record: TaskRecord, error: str, result: TaskResult | None, now: float
    ) -> Outbox:
        """An attempt failed: retry after a backoff while retries are left, else fail."""
        record.errors.append(error)
        record.deadline = None
        if record.attempts > record.task.max_retries:
            return self._fail(record, _attempt_errors(record), result, now)
        record.apply("retry", TaskState.Pending(), now)
        heapq.heappush(
            self._retries, (now + self.backoff(record.attempts), record.sequence, record.id)
        )
        return []

    def backoff(self, attempts: int) -> float:
        """The pause before the next attempt, after *attempts* failed ones (with jitter)."""
        policy = self.policy
        pause = min(policy.retry_backoff_max, policy.retry_backoff * 2.0 ** (attempts - 1))
        jitter: float = 0.5 + self._rng.random() / 2 if self._rng is not None else 1.0
        return pause * jitter

    def _started(self, record: TaskRecord, worker_id: uuid.UUID, now: float) -> None:
        """An attempt began running: it must finish within ``timeout_seconds``."""
        if record.status == SCHEDULED and record.task.timeout_seconds:
            record.deadline = now + record.task.timeout_seconds
            heapq.heappush(self._deadlines, (record.deadline, record.sequence, record.id))

    # -- the dispatch table -----------------------------------------------------------------

    def handle(self, peer: Peer, message: m.Message, now: float) -> Outbox:
        """Apply one message from *peer*; returns what to send, and to whom."""
        entry = self.registry.get(peer.id)
        if entry is not None:
            entry.last_seen = now  # any message from a worker shows it is alive
        handler = HANDLERS.get(type(message))
        if handler is None:
            error = m.Error(code=ErrorCode.InvalidRequest, message="Unhandled message type")
            return [(peer.id, error)]
        return handler(self, peer, message, now)

    def on_heartbeat(self, peer: Peer, beat: m.Heartbeat, now: float) -> Outbox:
        ack = m.HeartbeatAck(
            coordinator_id=self.id, echo_timestamp=beat.timestamp, coordinator_timestamp=int(now)
        )
        outbox: Outbox = [(peer.id, ack)]
        if self.registry.heartbeat(peer.id, beat.state, now) is not None:
            outbox += self.schedule(now)  # cheap when nothing is ready or nothing is free
        return outbox

    def on_submit(self, peer: Peer, submit: m.TaskSubmit, now: float) -> Outbox:
        task = submit.task
        existing = self.store.get(task.id)
        if existing is None:
            task = dataclasses.replace(task, state=TaskState.Pending())
            record_message = m.TaskSubmit(task=task, request_id=submit.request_id)
            entry: m.Message | bytes = record_message
            if self.record_limit is not None:
                entry = encode_frame(record_message, 1)  # measured once, journaled as it is
                if len(entry) > self.record_limit:
                    reason = (
                        f"too large to replicate: {len(entry)} bytes (at most {self.record_limit})"
                    )
                    return [(peer.id, _submit_ack(submit, False, reason))]
            missing = [d for d in task.dependencies if self.store.get(d) is None]
            if missing:
                reason = f"unknown dependency {missing[0]}"
                return [(peer.id, _submit_ack(submit, False, reason))]
            client = peer.id if peer.kind == NodeType.Client else None
            record = self.store.add(task, now, client)
            self.journal.append(entry)
            outbox: Outbox = [(peer.id, _submit_ack(submit, True, None))]
            failure = self.scheduler.add(record, self.store.get)
            if failure is not None:
                return outbox + self._fail(record, failure, None, now)
            return outbox + self.schedule(now)
        outbox = [(peer.id, _submit_ack(submit, True, None))]  # idempotent resubmission
        if existing.client is None and peer.kind == NodeType.Client:
            existing.client = peer.id  # a client that reconnected asks for its outcome
        if existing.finished and peer.kind == NodeType.Client:
            outbox.append((peer.id, _outcome(existing)))
        return outbox

    def on_assign_ack(self, peer: Peer, ack: m.TaskAssignAck, now: float) -> Outbox:
        record = self._held_by(peer, ack.task_id)
        if record is None:
            return []
        record.acknowledged = ack.accepted
        if ack.accepted:
            # A v1 worker runs what it accepts at once; a v2 worker may queue it (prefetch)
            # and says when it starts, with a TaskStatus.
            if record.status == SCHEDULED and peer.version < 2:
                running = TaskState.Running(worker_id=peer.id, started_at=int(now), progress=None)
                self._started(record, peer.id, now)
                record.apply("start", running, now)
            return []
        entry = self.registry.get(peer.id)
        if entry is not None:
            entry.running.discard(record.id)
        record.excluded[peer.id] = now + REFUSAL_PAUSE
        record.attempts -= 1  # a refusal is not an attempt
        record.apply("reject", TaskState.Pending(), now)
        self.scheduler.requeue(record)
        return self.schedule(now)

    def on_status(self, peer: Peer, status: m.TaskStatus, now: float) -> Outbox:
        record = self._held_by(peer, status.task_id)
        if record is None and isinstance(status.state, TaskState.Running):
            record = self._reclaim(peer, status.task_id, now)
        if record is not None and isinstance(status.state, TaskState.Running):
            progress = status.progress if status.progress is not None else status.state.progress
            started = status.state.started_at or int(now)
            running = TaskState.Running(worker_id=peer.id, started_at=started, progress=progress)
            self._started(record, peer.id, now)
            record.apply("start", running, now)
        return []

    def _reclaim(self, peer: Peer, task_id: uuid.UUID, now: float) -> TaskRecord | None:
        """A worker that came back still runs a task it was thought to have lost: if the
        task is still waiting for another worker, it is this worker's again."""
        record = self.store.get(task_id)
        entry = self.registry.get(peer.id)
        if record is None or entry is None or record.status != PENDING:
            return None
        self.scheduler.remove(record)
        record.apply("assign", TaskState.Scheduled(worker_id=peer.id), now)
        record.worker = peer.id
        record.attempts += 1
        entry.running.add(task_id)
        return record

    def on_result(self, peer: Peer, report: m.TaskResultMessage, now: float) -> Outbox:
        result = report.result
        entry = self.registry.get(peer.id)
        if entry is not None:
            entry.running.discard(result.task_id)  # the slot is free, whatever the task's fate
        record = self._held_by(peer, result.task_id)
        if record is None:
            return self._late_result(peer, result, now) + self.schedule(now)
        if result.success:
            done = TaskState.Completed(
                worker_id=peer.id, completed_at=int(now), duration_ms=result.duration_ms
            )
            record.apply("complete", done, now)
            record.result = result
            return self._finished(record, now) + self.schedule(now)
        return self._attempt_failed(
            record, result.error or "failed without an error message", result, now
        ) + self.schedule(now)

    def on_cancel(self, peer: Peer, cancel: m.TaskCancel, now: float) -> Outbox:
        record = self.store.get(cancel.task_id)
        if record is None or record.finished:
            why = "task not found" if record is None else f"task already {record.status.lower()}"
            if peer.version >= 2:
                refusal: m.Message = m.TaskCancelAck(
                    task_id=cancel.task_id, accepted=False, reason=why
                )
            else:  # what the reference coordinator answers
                refusal = m.Error(
                    code=ErrorCode.TaskNotFound,
                    message="Task not found or already completed",
                    entity_id=str(cancel.task_id),
                )
            return [(peer.id, refusal)]
        outbox: Outbox = []
        worker = record.worker
        if record.status == PENDING:
            self.scheduler.remove(record)
            how = "cancelled before it ran"
        else:
            how = "cancelled; its worker was told to stop it"
            if worker is not None:
                stop = m.TaskCancel(task_id=record.id, requested_by=peer.id, reason=cancel.reason)
                outbox.append((worker, stop))
        record.apply("cancel", TaskState.Cancelled(cancelled_at=int(now)), now)
        if peer.version >= 2:
            outbox.append((peer.id, m.TaskCancelAck(task_id=record.id, accepted=True, reason=how)))
        else:
            outbox.append((peer.id, self._query_response(record.id)))
        return outbox + self._finished(record, now)

    def on_query(self, peer: Peer, query: m.TaskQuery, now: float) -> Outbox:
        return [(peer.id, self._query_response(query.task_id))]

    def on_cluster_status(self, peer: Peer, request: m.ClusterStatusRequest, now: float) -> Outbox:
        online = len(self.registry.eligible())
        response = m.ClusterStatusResponse(
            request_id=request.request_id,
            leader_id=self.id,
            total_nodes=self.coordinators + online,
            online_workers=online,
            pending_tasks=self.store.count(PENDING),
            running_tasks=self.store.count(SCHEDULED, RUNNING),
            completed_tasks=self.store.completed_total,
            failed_tasks=self.store.failed_total,
            uptime_seconds=max(0, int(now - self.started_at)),
        )
        return [(peer.id, response)]

    def on_worker_list(self, peer: Peer, request: m.WorkerListRequest, now: float) -> Outbox:
        workers = tuple(w.node_info(int(w.last_seen)) for w in self.registry.eligible())
        return [(peer.id, m.WorkerListResponse(request_id=request.request_id, workers=workers))]

    def on_task_list(self, peer: Peer, request: m.TaskListRequest, now: float) -> Outbox:
        limit = min(request.limit or TASK_LIST_LIMIT, TASK_LIST_LIMIT)
        tasks = tuple(_summary(r) for r in self.store.newest(limit))
        return [(peer.id, m.TaskListResponse(request_id=request.request_id, tasks=tasks))]

    def _late_result(self, peer: Peer, result: TaskResult, now: float) -> Outbox:
        """A result from a worker the task was taken from (it was thought lost). The first
        success wins if the task is not finished yet; any other late report is ignored."""
        record = self.store.get(result.task_id)
        if record is None or record.finished or not result.success:
            return []
        outbox: Outbox = []
        current = record.worker
        if current is not None and current != peer.id:  # a second run is under way: stop it
            stop = m.TaskCancel(task_id=record.id, requested_by=self.id, reason="done elsewhere")
            outbox.append((current, stop))
        if record.status == PENDING:
            self.scheduler.remove(record)
            record.apply("assign", TaskState.Scheduled(worker_id=peer.id), now)
        done = TaskState.Completed(
            worker_id=peer.id, completed_at=int(now), duration_ms=result.duration_ms
        )
        record.apply("complete", done, now)
        record.result = result
        record.worker = peer.id
        return outbox + self._finished(record, now)

    def on_disconnect(self, peer: Peer, bye: m.Disconnect, now: float) -> Outbox:
        if bye.graceful:
            self._handed_back.add(peer.id)  # its unfinished tasks are handed back, not lost
        return []  # the server ends the session, and leave() does the rest

    # -- scheduling and outcomes ------------------------------------------------------------

    def schedule(self, now: float) -> Outbox:
        """Give ready tasks to workers with free slots."""
        outbox: Outbox = []
        placed = self.scheduler.assign(self.registry.eligible(), self.store.get, now)
        for task_id, worker_id in placed:
            record = self.store.records[task_id]
            entry = self.registry.workers[worker_id]
            record.apply("assign", TaskState.Scheduled(worker_id=worker_id), now)
            record.worker = worker_id
            record.attempts += 1
            record.acknowledged = False
            entry.running.add(task_id)
            deadline = now + self.policy.heartbeat_timeout  # an assignment must be acknowledged
            heapq.heappush(self._ack_deadlines, (deadline, record.sequence, record.id, worker_id))
            task = dataclasses.replace(record.task, payload=self._inputs(record))
            outbox.append((worker_id, m.TaskAssign(task=task)))
        return outbox

    def _inputs(self, record: TaskRecord) -> TaskPayload:
        """A Reduce that depends on tasks and has no inputs is fed their results, in order."""
        payload = record.task.payload
        if not isinstance(payload, TaskPayload.Reduce) or payload.intermediate_results:
            return payload
        results = []
        for dependency in record.task.dependencies:
            other = self.store.get(dependency)
            if other is not None and other.result is not None and other.result.data is not None:
                results.append(other.result.data)
        return TaskPayload.Reduce(function=payload.function, intermediate_results=tuple(results))

    def _fail(
        self, record: TaskRecord, error: str, result: TaskResult | None, now: float
    ) -> Outbox:
        failed = TaskState.Failed(
            worker_id=record.worker,
            error=error,
            failed_at=int(now),
            retries=max(0, record.attempts - 1),
        )
        if record.status == PENDING:
            self.scheduler.remove(record)
        record.apply("fail", failed, now)
        record.result = result
        return self._finished(record, now)

    def _finished(self, record: TaskRecord, now: float) -> Outbox:
        """A task reached its final state: count it, tell its client, settle its dependents."""
        self.store.count_final(record)
        self.journal.append(_outcome(record))
        outbox: Outbox = []
        client = self.peers.get(record.client) if record.client else None
        if client is not None:
            outbox.append((client.id, _outcome(record)))
        for waiter_id, reason in self.scheduler.finished(record, self.store.get):
            waiter = self.store.records[waiter_id]
            outbox += self._fail(waiter, reason, None, now)
        return outbox

    def _held_by(self, peer: Peer, task_id: uuid.UUID) -> TaskRecord | None:
        """The task, if *peer* is the worker it is assigned to and it is not finished."""
        record = self.store.get(task_id)
        if record is None or record.worker != peer.id or record.finished:
            return None
        return record

    def _query_response(self, task_id: uuid.UUID) -> m.TaskQueryResponse:
        record = self.store.get(task_id)
        if record is None:
            return m.TaskQueryResponse(task_id=task_id, found=False, task=None, result=None)
        task = record.snapshot()
        result_bytes = len(record.result.data or b"") if record.result is not None else 0
        if _payload_bytes(task.payload) + result_bytes > QUERY_BYTES:
            task = _summary(record)  # the input and the output would not fit in one frame
        return m.TaskQueryResponse(task_id=task_id, found=True, task=task, result=record.result)

    def take_journal(self) -> list[m.Message | bytes]:
        entries, self.journal = self.journal, []
        return entries

    def restore(self, entries: list[m.Message], now: float) -> None:
        """Rebuild the task store from a journal: final tasks keep their outcome (retained
        from *now*); the others are pending again, waiting for their dependencies."""
        for entry in entries:
            self.replay(entry, now)

    def replay(self, entry: m.Message, now: float) -> None:
        """Apply one journal record: from this coordinator's own journal on a restart, or
        from the leader's (a follower keeps its copy of the tasks this way). Idempotent:
        a task already known, or an outcome already applied, changes nothing."""
        if isinstance(entry, m.TaskSubmit):
            if self.store.get(entry.task.id) is not None:
                return
            task = dataclasses.replace(entry.task, state=TaskState.Pending())
            record = self.store.add(task, now, task.submitted_by)  # its client may come back
            failure = self.scheduler.add(record, self.store.get)
            if failure is not None:
                self._fail(record, failure, None, now)
        elif isinstance(entry, m.TaskOutcome):
            known = self.store.get(entry.task_id)
            if known is None or known.finished:
                return
            if known.status == PENDING:
                self.scheduler.remove(known)
            known.state, known.result, known.finished_at = entry.state, entry.result, now
            self.store.count_final(known)
            for waiter_id, reason in self.scheduler.finished(known, self.store.get):
                self._fail(self.store.records[waiter_id], reason, None, now)

    def live_journal(self) -> list[m.Message]:
        """The journal's content for what is remembered now (to compact it)."""
        entries: list[m.Message] = []
        for record in sorted(self.store.records.values(), key=lambda r: r.sequence):
            entries.append(m.TaskSubmit(task=record.task, request_id=uuid.UUID(int=0)))
            if record.finished:
                entries.append(_outcome(record))
        return entries

    def purge(self, now: float) -> int:
        """Forget finished tasks whose retention has ended; returns how many."""
        return len(self.store.purge(now, self.policy.retention))


def _outcome(record: TaskRecord) -> m.TaskOutcome:
    return m.TaskOutcome(task_id=record.id, state=record.state, result=record.result)


def _submit_ack(submit: m.TaskSubmit, accepted: bool, reason: str | None) -> m.TaskSubmitAck:
    return m.TaskSubmitAck(
        request_id=submit.request_id,
        accepted=accepted,
        task_id=submit.task.id if accepted else None,
        reason=reason,
    )


def _attempt_errors(record: TaskRecord) -> str:
    if len(record.errors) == 1:
        return record.errors[0]
    return "; ".join(f"attempt {n}: {error}" for n, error in enumerate(record.errors, 1))


def _payload_bytes(payload: TaskPayload) -> int:
    if isinstance(payload, TaskPayload.Data):
        return len(payload.data)
    if isinstance(payload, TaskPayload.Map):
        return sum(len(chunk) for chunk in payload.input_chunks)
    if isinstance(payload, TaskPayload.Reduce):
        return sum(len(item) for item in payload.intermediate_results)
    return 0


def _summary(record: TaskRecord) -> Any:
    """A task for listing: its state, without its payload's bytes (they may be large)."""
    payload = record.task.payload
    if isinstance(payload, TaskPayload.Data):
        payload = TaskPayload.Data(function=payload.function, data=b"")
    elif isinstance(payload, TaskPayload.Map):
        payload = TaskPayload.Map(function=payload.function, input_chunks=())
    elif isinstance(payload, TaskPayload.Reduce):
        payload = TaskPayload.Reduce(function=payload.function, intermediate_results=())
    return record.with_payload(payload)


Handler = Callable[[CoordinatorCore, Peer, Any, float], Outbox]

#: Which handler answers which message. Anything else gets "Unhandled message type".
HANDLERS: dict[type[m.Message], Handler] = {
    m.Heartbeat: CoordinatorCore.on_heartbeat,
    m.TaskSubmit: CoordinatorCore.on_submit,
    m.TaskAssignAck: CoordinatorCore.on_assign_ack,
    m.TaskStatus: CoordinatorCore.on_status,
    m.TaskResultMessage: CoordinatorCore.on_result,
    m.TaskCancel: CoordinatorCore.on_cancel,
    m.TaskQuery: CoordinatorCore.on_query,
    m.ClusterStatusRequest: CoordinatorCore.on_cluster_status,
    m.WorkerListRequest: CoordinatorCore.on_worker_list,
    m.TaskListRequest: CoordinatorCore.on_task_list,
    m.Disconnect: CoordinatorCore.on_disconnect,
}

__all__ = ["HANDLERS", "CoordinatorCore", "IllegalTransition", "Outbox", "Peer"]
