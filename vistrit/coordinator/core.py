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
import uuid
from collections.abc import Callable
from typing import Any

from vistrit.coordinator import answers, batches, limits, offers, release
from vistrit.coordinator.membership import Peer, admit, forbidden, may_send
from vistrit.defaults import DEFAULT_POLICY, Policy
from vistrit.logic.liveness import Liveness
from vistrit.logic.registry import Registry
from vistrit.logic.scheduler import Chooser, Scheduler, inputs_of
from vistrit.logic.store import TaskStore
from vistrit.logic.tasks import (
    PENDING,
    RUNNING,
    SCHEDULED,
    IllegalTransition,
    TaskRecord,
    as_pending,
)
from vistrit.protocol import encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import NodeInfo, NodeType, TaskResult, TaskState

#: What a handler decides to send: ``[(node_id, message), ...]``, in order.
Outbox = list[tuple[uuid.UUID, m.Message]]

#: How long a worker that refused a task is not offered that task again. Heartbeats
#: retry scheduling, so a refusal for a passing reason (a full worker) costs about this.
REFUSAL_PAUSE = 1.0


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
        #: Frames for the journal (TaskSubmit, TaskOutcome, TaskOutcomeAck), taken by the
        #: server before it sends the outbox that depends on them.
        self.journal: list[m.Message | bytes] = []  # bytes: a record already encoded
        self._handed_back: set[uuid.UUID] = set()  # workers that said a graceful goodbye
        self.started_at = started_at
        self.store = TaskStore()
        self.registry = Registry(policy.max_slots, policy.quick_prefetch)
        self.scheduler = Scheduler(policy.strategy, rng)
        self.liveness = Liveness(policy, rng.random if rng is not None else None)
        self.peers: dict[uuid.UUID, Peer] = {}
        self.coordinators = 1  # this one, and the others of its cluster it reaches
        #: In a cluster, the largest TaskSubmit frame accepted: its record must fit inside
        #: a Replicate frame. None: no limit but the frame cap.
        self.record_limit: int | None = None
        self.notes = offers.Notes()  # why the tasks no worker can run wait

    @property
    def id(self) -> uuid.UUID:
        """This coordinator's node id."""
        return self.info.id

    # -- joining and leaving ----------------------------------------------------------------

    def join(
        self, hello: m.Handshake, now: float, role: str | None = None
    ) -> tuple[m.HandshakeAck, Peer | None]:
        """Answer a Handshake (of a node that proved *role*): a Peer, or a refusal's reason."""
        ack, peer = admit(hello, role, self.peers, self.info)
        if peer is not None:
            self.peers[peer.id] = peer
            if peer.kind == NodeType.Worker:
                prefetch = self.policy.prefetch if peer.version >= 2 else 0
                self.registry.add(hello.node_info, now, prefetch, needs_offer=peer.version >= 4)
        return ack, peer

    def leave(self, peer_id: uuid.UUID, now: float) -> Outbox:
        """A connection ended (or its worker was declared dead): forget the peer.

        A worker's unfinished tasks go back to the queue, after a backoff if they had
        started there. A started task that lost too many workers is failed as a poison
        task (:mod:`vistrit.logic.liveness`); lost workers do not use up its own retries.
        """
        self.peers.pop(peer_id, None)
        graceful = peer_id in self._handed_back
        self._handed_back.discard(peer_id)
        entry = self.registry.remove(peer_id, now)
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
                record.requeued("worker lost", now)
                self.scheduler.requeue(record)
                continue
            record.lost_workers += 1
            record.errors += (f"lost its worker {name}",)
            if self.liveness.is_poison(record.lost_workers):
                error = f"lost {record.lost_workers} workers while running: {record.history()}"
                outbox += self.fail(record, error, None, now)
            else:
                record.requeued("worker lost", now)
                self.liveness.retry_later(record.id, record.sequence, record.lost_workers, now)
        return outbox + self.schedule(now)

    # -- the passing of time ----------------------------------------------------------------

    def tick(self, now: float) -> tuple[Outbox, list[uuid.UUID]]:
        """The passing of time (the rules of :mod:`vistrit.logic.liveness`): silent workers,
        overdue attempts and assignments, due retries. Returns what to send, and the workers
        declared dead (the server closes them)."""
        dead = self.silent_workers(now)
        outbox: Outbox = []
        for worker_id in dead:
            outbox += self.leave(worker_id, now)
        outbox += self._expire_attempts(now)
        self._expire_assignments(now)
        for task_id in self.liveness.due_retries(now):
            record = self.store.get(task_id)
            if record is not None and record.status == PENDING:  # not cancelled meanwhile
                self.scheduler.requeue(record)
        outbox += self.schedule(now)
        queues, entered = self.scheduler.queues.values(), self.scheduler.entered
        return outbox + self.notes.due(self, queues, entered, now), dead

    def silent_workers(self, now: float) -> list[uuid.UUID]:
        """Workers not heard from for longer than the heartbeat timeout."""
        return self.liveness.silent(self.registry.workers.values(), now)

    def _expire_attempts(self, now: float) -> Outbox:
        """Fail attempts that passed ``timeout_seconds``; their workers are told to stop."""
        outbox: Outbox = []
        for task_id, deadline in self.liveness.overdue_attempts(now):
            record = self.store.get(task_id)
            if record is None or record.deadline != deadline or record.status != RUNNING:
                continue  # finished, or a later attempt with its own deadline
            timeout = record.task.timeout_seconds
            if record.worker is not None:
                stop = m.TaskCancel(task_id=record.id, requested_by=self.id, reason="timed out")
                outbox.append((record.worker, stop))
            outbox += self._attempt_failed(record, f"timed out after {timeout} s", None, now)
        return outbox

    def _expire_assignments(self, now: float) -> None:
        """An assignment never acknowledged (lost, or ignored by a live worker) is taken
        back, as if refused: the task goes to another worker, never stuck in Scheduled."""
        for task_id, worker_id in self.liveness.unacknowledged(now):
            record = self.store.get(task_id)
            if record is None or record.acknowledged or record.worker != worker_id:
                continue
            if record.status == SCHEDULED:  # not started, refused or finished meanwhile
                self._take_back(record, worker_id, now)

    def _take_back(self, record: TaskRecord, worker_id: uuid.UUID, now: float) -> None:
        """A worker refused an assignment (or never acknowledged it): back to the queue,
        and not offered to that worker again for a while. A refusal is not an attempt."""
        self.registry.release(worker_id, record.id)
        record.exclude(worker_id, now + REFUSAL_PAUSE)
        record.attempts -= 1
        record.requeued("refused", now)
        self.scheduler.requeue(record)

    def _attempt_failed(
        self, record: TaskRecord, error: str, result: TaskResult | None, now: float
    ) -> Outbox:
        """An attempt failed: retry after a backoff while retries are left, else fail."""
        record.errors += (error,)
        record.deadline = None
        if record.attempts > record.task.max_retries:
            return self.fail(record, record.history(), result, now)
        record.requeued("attempt failed", now)
        self.liveness.retry_later(record.id, record.sequence, record.attempts, now)
        return []

    def _started(self, record: TaskRecord, worker: uuid.UUID, at: int, progress: int | None,
                 now: float) -> None:  # fmt: skip
        """The worker runs the task: a first report starts the attempt's deadline."""
        if record.status == SCHEDULED:
            limit = record.task.timeout_seconds
            record.deadline = self.liveness.attempt_started(record.id, record.sequence, limit, now)
        record.started(worker, at, progress, now)

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
        if not may_send(peer.kind, message):
            return [(peer.id, forbidden(peer.kind, message))]
        return handler(self, peer, message, now)

    def on_heartbeat(self, peer: Peer, beat: m.Heartbeat, now: float) -> Outbox:
        """A node is alive: answer (workers and clients time their coordinator by it) and,
        for a worker, note its state and schedule (a first heartbeat makes it eligible)."""
        ack = m.HeartbeatAck(
            coordinator_id=self.id, echo_timestamp=beat.timestamp, coordinator_timestamp=int(now)
        )
        outbox: Outbox = [(peer.id, ack)]
        if self.registry.heartbeat(peer.id, beat.state, now) is not None:
            outbox += self.schedule(now)  # cheap when nothing is ready or nothing is free
        return outbox

    def on_submit(self, peer: Peer, submit: m.TaskSubmit, now: float) -> Outbox:
        """Record a new task and acknowledge it; a known id is acknowledged again."""
        existing = self.store.get(submit.task.id)
        if existing is not None:
            return self._resubmitted(peer, submit, existing)
        task = as_pending(submit.task)
        record_message = submit  # journaled as it came, when it says Pending (clients do)
        if task is not submit.task:
            record_message = m.TaskSubmit(task=task, request_id=submit.request_id)
        entry: m.Message | bytes = record_message
        reason = limits.refusal(peer.kind, peer.id, task, self.store, self.policy)
        if reason is None and self.record_limit is not None:
            entry = encode_frame(record_message, 1)  # measured once, journaled as it is
            if len(entry) > self.record_limit:
                reason = f"too large to replicate: {len(entry)} bytes (at most {self.record_limit})"
        if reason is not None:
            return [(peer.id, answers.submit_ack(submit, False, reason))]
        client = peer.id if peer.kind == NodeType.Client else None
        record = self.store.add(task, now, client)
        self.journal.append(entry)
        outbox: Outbox = [(peer.id, answers.submit_ack(submit, True, None))]
        failure = self.scheduler.add(record, self.store.get)
        if failure is not None:
            return outbox + self.fail(record, failure, None, now)
        outbox += self.schedule(now)
        if record.id in self.scheduler.waiting:  # for its dependencies, not for a worker
            return outbox
        return outbox + offers.waiting_note(self, record)

    def _resubmitted(self, peer: Peer, submit: m.TaskSubmit, existing: TaskRecord) -> Outbox:
        """A known id: acknowledged again (idempotent), and its outcome sent if it has one."""
        outbox: Outbox = [(peer.id, answers.submit_ack(submit, True, None))]
        if existing.client is None and peer.kind == NodeType.Client:
            self.store.adopt(existing, peer.id)
        if existing.finished and peer.kind == NodeType.Client:
            outbox.append((peer.id, answers.outcome(existing)))
        return outbox

    def on_assign_ack(self, peer: Peer, ack: m.TaskAssignAck, now: float) -> Outbox:
        """A worker accepted an assignment (a v1 worker runs it at once), or refused it."""
        record = self._held_by(peer, ack.task_id)
        if record is None:
            return []
        record.acknowledged = ack.accepted
        if ack.accepted:
            # A v1 worker runs what it accepts at once; a v2 worker may queue it (prefetch)
            # and says when it starts, with a TaskStatus.
            if record.status == SCHEDULED and peer.version < 2:
                self._started(record, peer.id, int(now), None, now)
            return []
        self._take_back(record, peer.id, now)
        return self.schedule(now)

    def on_status(self, peer: Peer, status: m.TaskStatus, now: float) -> Outbox:
        """A worker runs a task (or reports progress); a worker that came back may still
        run one it was thought to have lost, and gets it back."""
        if not isinstance(status.state, TaskState.Running):
            return []
        self.registry.ran(peer.id, quick=False)  # a run told of is not quick
        record = self._held_by(peer, status.task_id) or self._reclaim(peer, status.task_id, now)
        if record is None:
            return []
        progress = status.progress if status.progress is not None else status.state.progress
        self._started(record, peer.id, status.state.started_at or int(now), progress, now)
        return offers.running_news(self, record, status)  # its client hears it runs

    def _reclaim(self, peer: Peer, task_id: uuid.UUID, now: float) -> TaskRecord | None:
        """A worker that came back still runs a task it was thought to have lost: if the
        task is still waiting for another worker, it is this worker's again."""
        record = self.store.get(task_id)
        entry = self.registry.get(peer.id)
        if record is None or entry is None or record.status != PENDING:
            return None
        self.scheduler.remove(record)
        record.assigned(peer.id, now)
        record.attempts += 1
        self.registry.hold(entry, task_id)
        return record

    def on_result(self, peer: Peer, report: m.TaskResultMessage, now: float) -> Outbox:
        """A worker finished an attempt: complete the task, retry it, or fail it."""
        result = report.result
        self.registry.ran(peer.id, quick=result.duration_ms == 0)
        self.registry.release(peer.id, result.task_id)  # free, whatever the task's fate
        record = self._held_by(peer, result.task_id)
        if record is None:
            return self._late_result(peer, result, now) + self.schedule(now)
        if result.success:
            record.completed(peer.id, result.duration_ms, now)
            record.result = result
            return self._finished(record, now) + self.schedule(now)
        error = result.error or "failed without an error message"
        return self._attempt_failed(record, error, result, now) + self.schedule(now)

    def on_cancel(self, peer: Peer, cancel: m.TaskCancel, now: float) -> Outbox:
        """Cancel a task: a pending one leaves the queue; a running one's worker is told."""
        record = self.store.get(cancel.task_id)
        if record is None or record.finished:
            why = "task not found" if record is None else f"task already {record.status.lower()}"
            return [(peer.id, answers.cancel_refusal(peer.version, cancel.task_id, why))]
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
        record.cancelled(now)
        outbox.append((peer.id, answers.cancel_ack(peer.version, self.store, record.id, how)))
        return outbox + self._finished(record, now)

    def _late_result(self, peer: Peer, result: TaskResult, now: float) -> Outbox:
        """A result from a worker the task was taken from (it was thought lost). The first
        success wins if the task is not finished yet; any other late report is ignored."""
        record = self.store.get(result.task_id)
        if record is None or record.finished or not result.success or peer.id not in record.tried:
            return []  # a worker reports only on a task it was given
        outbox: Outbox = []
        current = record.worker
        if current is not None and current != peer.id:  # a second run is under way: stop it
            stop = m.TaskCancel(task_id=record.id, requested_by=self.id, reason="done elsewhere")
            outbox.append((current, stop))
        if record.status == PENDING:
            self.scheduler.remove(record)
        record.completed(peer.id, result.duration_ms, now)
        record.result = result
        return outbox + self._finished(record, now)

    def on_disconnect(self, peer: Peer, bye: m.Disconnect, now: float) -> Outbox:
        """A goodbye: a graceful one hands the worker's unfinished tasks back."""
        if bye.graceful:
            self._handed_back.add(peer.id)  # its unfinished tasks are handed back, not lost
        return []  # the server ends the session, and leave() does the rest

    def schedule(self, now: float) -> Outbox:
        """Give ready tasks to workers with free slots."""
        outbox: Outbox = []
        placed = self.scheduler.assign(self.registry, self.store.get, now)
        for task_id, worker_id in placed:
            record = self.store.known(task_id)  # placed, so pending, so remembered
            inputs = inputs_of(record, self.store.get)
            if (why := limits.cannot_assign(inputs)) is not None:
                outbox += self.fail(record, why, None, now)  # it could never reach a worker
                self.registry.release(worker_id, task_id)  # its slot was counted as taken
                continue
            assert not isinstance(inputs, str)
            record.assigned(worker_id, now)
            record.attempts += 1
            record.acknowledged = False
            self.registry.hold(self.registry.workers[worker_id], task_id)
            self.liveness.assignment_sent(record.id, worker_id, now)
            task = record.task  # a copy only for a Reduce fed its dependencies' results
            if inputs is not task.payload:
                task = dataclasses.replace(task, payload=inputs)
            outbox.append((worker_id, m.TaskAssign(task=task)))
        return outbox

    def fail(self, record: TaskRecord, error: str, result: TaskResult | None, now: float) -> Outbox:
        """*record* failed for good (*error*): out of the queue if it waited there, and
        finished as every task is (see :meth:`_finished`)."""
        if record.status == PENDING:
            self.scheduler.remove(record)
        record.failed(error, now)
        record.result = result
        return self._finished(record, now)

    def _finished(self, record: TaskRecord, now: float) -> Outbox:
        """A task reached its final state: count it, tell its client, settle its dependents."""
        self.store.count_final(record)
        self.liveness.settled(record.id)
        told = answers.outcome(record)  # one message: journaled, and sent to the client
        self.journal.append(told)
        outbox: Outbox = []
        client = self.peers.get(record.client) if record.client else None
        if client is not None:
            outbox.append((client.id, told))
        return outbox + self.settle_dependents(record, now)

    def settle_dependents(self, record: TaskRecord, now: float) -> Outbox:
        """Tasks waiting on *record* become ready, or fail if it did not complete."""
        outbox: Outbox = []
        for waiter_id, reason in self.scheduler.finished(record, self.store.get):
            outbox += self.fail(self.store.known(waiter_id), reason, None, now)
        return outbox

    def _held_by(self, peer: Peer, task_id: uuid.UUID) -> TaskRecord | None:
        """The task, if *peer* is the worker it is assigned to and it is not finished."""
        record = self.store.get(task_id)
        if record is None or record.worker != peer.id or record.finished:
            return None
        return record

    def take_journal(self) -> list[m.Message | bytes]:
        """The records decided since the last call, to journal (and replicate)."""
        entries, self.journal = self.journal, []
        return entries

    def live_journal(self) -> list[m.Message]:
        """The journal's content for what is remembered now (to compact it)."""
        return answers.live_records(self.store)


#: A handler: the core, the sending peer, the message and ``now``; returns an outbox.
Handler = Callable[[CoordinatorCore, Peer, Any, float], Outbox]

#: Which handler answers which message (the read-only requests are answered by
#: :mod:`vistrit.coordinator.answers`). Anything else gets "Unhandled message type".
HANDLERS: dict[type[m.Message], Handler] = {
    m.Heartbeat: CoordinatorCore.on_heartbeat,
    m.TaskSubmit: CoordinatorCore.on_submit,
    m.TaskSubmitBatch: batches.on_submit_batch,
    m.TaskOutcomeAck: release.on_outcome_ack,
    m.TaskAssignAck: CoordinatorCore.on_assign_ack,
    m.TaskStatus: CoordinatorCore.on_status,
    m.TaskResultMessage: CoordinatorCore.on_result,
    m.TaskCancel: CoordinatorCore.on_cancel,
    m.TaskQuery: answers.on_query,
    m.ClusterStatusRequest: answers.on_cluster_status,
    m.WorkerListRequest: answers.on_worker_list,
    m.TaskListRequest: answers.on_task_list,
    m.TaskListQuery: answers.on_task_list_query,
    m.WorkerOffer: offers.on_offer,
    m.Disconnect: CoordinatorCore.on_disconnect,
}

__all__ = ["HANDLERS", "CoordinatorCore", "IllegalTransition", "Outbox", "Peer"]
