"""The coordinator's decisions, without sockets or threads: messages in, messages out, a
fake clock. Each test fails on any message it did not expect."""

from __future__ import annotations

import dataclasses
import random
import uuid

import pytest
from nodes import heartbeat

from vistrit.coordinator.core import HANDLERS, CoordinatorCore, Outbox, Peer
from vistrit.defaults import Policy
from vistrit.logic.tasks import FINAL, TRANSITIONS, IllegalTransition, TaskRecord
from vistrit.protocol import NEWEST_VERSION
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.examples import COORDINATOR, WORKER, word_count_task
from vistrit.protocol.types import (
    NodeState,
    NodeType,
    TaskPayload,
    TaskPriority,
    TaskResult,
    TaskState,
)

T0 = 1_000_000.0


def node(kind: NodeType, name: str, slots: int = 1, tags: tuple[str, ...] = ()) -> m.Handshake:
    info = dataclasses.replace(
        WORKER,
        id=uuid.uuid4(),
        node_type=kind,
        name=name,
        capabilities=dataclasses.replace(
            WORKER.capabilities, max_concurrent_tasks=slots, tags=tags
        ),
    )
    return m.Handshake(node_info=info, protocol_version=2 if kind == NodeType.Client else 1)


class World:
    """A core and a fake clock; helpers that return exactly what each peer was sent."""

    def __init__(self, strategy: str = "least-loaded") -> None:
        self.now = T0
        policy = Policy(
            strategy=strategy,
            retention=60,
            heartbeat_timeout=5,
            retry_backoff=0.5,
            retry_backoff_max=4,
        )
        self.core = CoordinatorCore(COORDINATOR, started_at=T0, policy=policy, rng=random.Random(1))

    def join(self, hello: m.Handshake) -> Peer:
        ack, peer = self.core.join(hello, self.now)
        assert ack.accepted and peer is not None, ack.reason
        return peer

    def worker(
        self, name: str = "w", slots: int = 1, tags: tuple[str, ...] = (), version: int = 1
    ) -> Peer:
        hello = dataclasses.replace(
            node(NodeType.Worker, name, slots, tags), protocol_version=version
        )
        peer = self.join(hello)
        self.send(peer, heartbeat(peer.id, int(self.now)))
        return peer

    def send(self, peer: Peer, message: m.Message) -> Outbox:
        return self.core.handle(peer, message, self.now)

    def submit(self, peer: Peer, **changes: object) -> tuple[uuid.UUID, Outbox]:
        task = dataclasses.replace(word_count_task(), id=uuid.uuid4(), **changes)  # type: ignore[arg-type]
        return task.id, self.send(peer, m.TaskSubmit(task=task, request_id=uuid.uuid4()))

    def result(
        self,
        worker: Peer,
        task_id: uuid.UUID,
        ok: bool = True,
        data: bytes = b"6",
        duration_ms: int = 1,
    ) -> Outbox:
        result = TaskResult(
            task_id=task_id,
            success=ok,
            data=data if ok else None,
            error=None if ok else "boom",
            exit_code=None,
            duration_ms=duration_ms,
            worker_id=worker.id,
            stdout=None,
            stderr=None,
        )
        return self.send(worker, m.TaskResultMessage(result=result))

    def state(self, task_id: uuid.UUID) -> str:
        record = self.core.store.get(task_id)
        assert record is not None
        return record.status


def kinds(outbox: Outbox, to: Peer | None = None) -> list[str]:
    return [msg.WIRE_NAME for peer_id, msg in outbox if to is None or peer_id == to.id]


# -- the state table ------------------------------------------------------------------------


def test_final_states_have_no_way_out() -> None:
    assert not [key for key in TRANSITIONS if key[0] in FINAL]
    record = TaskRecord(task=word_count_task(), sequence=1, submitted_at=T0)
    record.assigned(uuid.uuid4(), T0)
    record.completed(uuid.uuid4(), 1, T0)
    with pytest.raises(IllegalTransition, match="'completed' is not allowed when Completed"):
        record.completed(uuid.uuid4(), 1, T0)


def test_every_handled_message_has_a_handler_and_others_are_refused() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    assert m.TaskSubmit in HANDLERS and m.ElectionStart not in HANDLERS
    (reply,) = world.send(client, m.ElectionStart(term=1, candidate_id=uuid.uuid4(), priority=1))
    assert reply[1] == m.Error(code=ErrorCode.InvalidRequest, message="Unhandled message type")


# -- joining --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "version", "reason"),
    [
        (NodeType.Worker, 0, "protocol version 0 is not supported"),
        (NodeType.Client, 1, "clients need protocol version 2"),
        (NodeType.Coordinator, 1, "does not accept coordinator peers"),
    ],
)
def test_handshakes_that_are_refused(kind: NodeType, version: int, reason: str) -> None:
    hello = dataclasses.replace(node(kind, "x"), protocol_version=version)
    ack, peer = World().core.join(hello, T0)
    assert peer is None and not ack.accepted and reason in (ack.reason or "")


def test_a_node_id_cannot_join_twice_and_versions_are_agreed() -> None:
    world = World()
    hello = node(NodeType.Worker, "w")
    assert world.join(hello).version == 1
    ack, peer = world.core.join(hello, T0)
    assert peer is None and "already connected" in (ack.reason or "")
    newer = dataclasses.replace(node(NodeType.Worker, "v9"), protocol_version=9)
    assert world.join(newer).version == NEWEST_VERSION


def test_the_reference_cli_handshakes_as_a_worker_but_never_gets_a_task() -> None:
    world = World()
    cli = world.join(node(NodeType.Worker, "reference-cli"))  # no heartbeat, ever
    task_id, outbox = world.submit(cli)
    assert kinds(outbox) == ["TaskSubmitAck"]  # no TaskAssign: it is not a worker yet
    listing = world.send(cli, m.WorkerListRequest(request_id=uuid.uuid4()))
    assert listing[0][1].workers == ()  # type: ignore[attr-defined]
    worker = world.worker("real")
    assert world.state(task_id) == "Scheduled"
    assert world.core.store.records[task_id].worker == worker.id


# -- tasks ----------------------------------------------------------------------------------


def test_a_task_from_submit_to_result() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    task_id, outbox = world.submit(client)
    assert kinds(outbox, client) == ["TaskSubmitAck"] and kinds(outbox, worker) == ["TaskAssign"]
    assert (
        world.send(
            worker,
            m.TaskAssignAck(task_id=task_id, accepted=True, worker_id=worker.id, reason=None),
        )
        == []
    )
    assert world.state(task_id) == "Running"
    outbox = world.result(worker, task_id)
    assert kinds(outbox) == ["TaskOutcome"]  # pushed to the client that submitted it
    outcome = outbox[0][1]
    assert outcome.state.WIRE_NAME == "Completed" and outcome.result.data == b"6"  # type: ignore[attr-defined]
    assert world.result(worker, task_id) == []  # a duplicate result changes nothing
    assert world.core.store.completed_total == 1


def test_a_submission_is_journaled_as_it_came_and_recorded_pending() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=2)
    pending = m.TaskSubmit(task=word_count_task(), request_id=uuid.uuid4())
    world.send(client, pending)
    (entry,) = world.core.take_journal()
    assert entry is pending  # nothing copied for the journal
    # A task that claims another state is recorded, and journaled, as Pending.
    running = TaskState.Running(worker_id=uuid.uuid4(), started_at=1, progress=None)
    claimed = dataclasses.replace(word_count_task(), id=uuid.uuid4(), state=running)
    world.send(client, m.TaskSubmit(task=claimed, request_id=uuid.uuid4()))
    (entry,) = world.core.take_journal()
    assert isinstance(entry, m.TaskSubmit) and entry.task.state == TaskState.Pending()
    assert world.core.store.known(claimed.id).task.state == TaskState.Pending()
    # The outcome the client is sent is the one journaled.
    (told,) = world.result(worker, claimed.id)
    (journaled,) = world.core.take_journal()
    assert journaled is told[1] and told[0] == client.id  # one message, made once


def test_a_refused_assignment_goes_to_another_worker_then_back_after_a_pause() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    first = world.worker("first")
    task_id, _ = world.submit(client)
    outbox = world.send(
        first, m.TaskAssignAck(task_id=task_id, accepted=False, worker_id=first.id, reason="busy")
    )
    assert outbox == [] and world.state(task_id) == "Pending"
    second = world.worker("second")
    assert world.core.store.records[task_id].worker == second.id
    world.send(
        second, m.TaskAssignAck(task_id=task_id, accepted=False, worker_id=second.id, reason="busy")
    )
    world.now += 2  # the pause is over: a heartbeat retries
    beat = heartbeat(first.id, int(world.now))
    assert "TaskAssign" in kinds(world.send(first, beat), first)


def test_a_worker_that_leaves_gives_its_tasks_back() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    gone = world.worker("gone", slots=2)
    ids = [world.submit(client)[0] for _ in range(2)]
    assert all(world.state(i) == "Scheduled" for i in ids)
    assert world.core.leave(gone.id, world.now) == []
    assert all(world.state(i) == "Pending" for i in ids)
    stays = world.worker("stays", slots=2)
    assert all(world.core.store.records[i].worker == stays.id for i in ids)
    # The departed worker comes back (a new connection, the same id) with a late result:
    # the first result wins, the second run is told to stop, and duplicates are ignored.
    outbox = world.result(gone, ids[0])
    assert kinds(outbox, stays) == ["TaskCancel"] and kinds(outbox, client) == ["TaskOutcome"]
    assert world.state(ids[0]) == "Completed"
    assert world.result(stays, ids[0]) == [] and world.result(gone, ids[0]) == []
    assert world.core.store.completed_total == 1


def test_retries_then_final_failure() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    task_id, _ = world.submit(client, max_retries=1)
    assert world.result(worker, task_id, ok=False) == []  # the retry waits for its backoff
    assert world.state(task_id) == "Pending"
    world.now += 0.2
    assert kinds(world.core.tick(world.now)[0]) == []  # not yet: 0.25 s at least
    world.now += 0.4
    assert kinds(world.core.tick(world.now)[0]) == ["TaskAssign"]  # the second attempt
    outbox = world.result(worker, task_id, ok=False)
    state = outbox[0][1].state  # type: ignore[attr-defined]
    assert state.WIRE_NAME == "Failed" and state.retries == 1
    assert state.error == "attempt 1: boom; attempt 2: boom"


def test_reduce_is_fed_its_dependencies_results_in_order() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=3)
    a, _ = world.submit(client)
    b, _ = world.submit(client)
    reduce = TaskPayload.Reduce(function="sum", intermediate_results=())
    r, outbox = world.submit(client, payload=reduce, dependencies=(a, b))
    assert kinds(outbox) == ["TaskSubmitAck"]  # waits for a and b
    world.result(worker, b, data=b"2")
    outbox = world.result(worker, a, data=b"1")
    (assign,) = [msg for _, msg in outbox if isinstance(msg, m.TaskAssign)]
    assert assign.task.id == r
    assert assign.task.payload.intermediate_results == (b"1", b"2")  # type: ignore[attr-defined]


def test_cancel_answers_v1_and_v2_peers_in_their_own_terms() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    v1 = world.join(node(NodeType.Worker, "reference-cli"))
    worker = world.worker()
    running, _ = world.submit(client)
    outbox = world.send(client, m.TaskCancel(task_id=running, requested_by=client.id, reason=None))
    assert kinds(outbox, worker) == ["TaskCancel"]  # the worker is told
    assert kinds(outbox, client) == ["TaskCancelAck", "TaskOutcome"]
    unknown = uuid.uuid4()
    (reply,) = world.send(v1, m.TaskCancel(task_id=unknown, requested_by=v1.id, reason=None))
    assert reply[1] == m.Error(
        code=ErrorCode.TaskNotFound,
        message="Task not found or already completed",
        entity_id=str(unknown),
    )
    (reply,) = world.send(
        client, m.TaskCancel(task_id=running, requested_by=client.id, reason=None)
    )
    assert reply[1] == m.TaskCancelAck(
        task_id=running, accepted=False, reason="task already cancelled"
    )


def test_cluster_status_counts_and_uptime() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=1)
    done, _ = world.submit(client)
    world.result(worker, done)
    world.submit(client)  # running
    world.submit(client)  # pending
    world.now += 42
    (reply,) = world.send(client, m.ClusterStatusRequest(request_id=uuid.uuid4()))
    status = reply[1]
    assert (
        status.total_nodes,
        status.online_workers,
        status.pending_tasks,
        status.running_tasks,  # type: ignore[attr-defined]
        status.completed_tasks,
        status.failed_tasks,
        status.uptime_seconds,
    ) == (2, 1, 1, 1, 1, 0, 42)  # type: ignore[attr-defined]


def test_finished_tasks_are_forgotten_after_retention() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    task_id, _ = world.submit(client)
    world.result(worker, task_id)
    world.now += 30
    assert len(world.core.store.purge(world.now, world.core.policy.retention)) == 0
    world.now += 31
    assert len(world.core.store.purge(world.now, world.core.policy.retention)) == 1
    (reply,) = world.send(client, m.TaskQuery(task_id=task_id))
    assert reply[1] == m.TaskQueryResponse(task_id=task_id, found=False, task=None, result=None)
    assert world.core.store.completed_total == 1  # counters outlive retention


@pytest.mark.parametrize("strategy", ["least-loaded", "round-robin", "random"])
def test_strategies_place_within_capacity(strategy: str) -> None:
    world = World(strategy)
    client = world.join(node(NodeType.Client, "c"))
    workers = [world.worker(f"w{i}", slots=i + 1) for i in range(3)]
    for _ in range(10):
        world.submit(client)
    held = {w.name: len(world.core.registry.workers[w.id].running) for w in workers}
    assert held == {"w0": 1, "w1": 2, "w2": 3}  # six slots, six tasks placed, four waiting
    assert world.core.store.count("Pending") == 4


def test_priority_order_in_the_scheduler() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    ids = {
        p: world.submit(client, priority=p)[0]
        for p in (TaskPriority.Low, TaskPriority.Critical, TaskPriority.Normal)
    }
    worker = world.worker(slots=1)
    assert world.core.store.records[ids[TaskPriority.Critical]].worker == worker.id
    outbox = world.result(worker, ids[TaskPriority.Critical])
    (assign,) = [msg for _, msg in outbox if isinstance(msg, m.TaskAssign)]
    assert assign.task.id == ids[TaskPriority.Normal]


# -- failure detection, timeouts, backoff ---------------------------------------------------


def beat(world: World, peer: Peer) -> Outbox:
    return world.send(peer, heartbeat(peer.id, int(world.now)))


def start(world: World, worker: Peer, task_id: uuid.UUID) -> None:
    running = TaskState.Running(worker_id=worker.id, started_at=int(world.now), progress=None)
    world.send(
        worker,
        m.TaskStatus(
            task_id=task_id, worker_id=worker.id, state=running, progress=None, message=None
        ),
    )


def test_a_silent_worker_is_declared_dead_and_its_tasks_go_to_others() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    silent = world.worker("silent", slots=2)
    task_id, _ = world.submit(client)
    world.now += 4.9
    assert world.core.tick(world.now)[1] == []  # 4.9 s of silence: not yet
    lively = world.worker("lively")
    world.now += 0.2
    outbox, dead = world.core.tick(world.now)
    assert dead == [silent.id] and silent.id not in world.core.registry.workers
    assert kinds(outbox, lively) == ["TaskAssign"]  # queued there: it never started
    assert world.core.store.records[task_id].attempts == 1
    listing = world.send(client, m.WorkerListRequest(request_id=uuid.uuid4()))
    assert [w.name for w in listing[0][1].workers] == ["lively"]  # type: ignore[attr-defined]


def test_any_message_from_a_worker_counts_as_a_sign_of_life() -> None:
    world = World()
    worker = world.worker()
    for _ in range(5):
        world.now += 3
        world.send(worker, m.TaskQuery(task_id=uuid.uuid4()))
        assert world.core.tick(world.now)[1] == []
    world.now += 3
    beat(world, worker)
    assert world.core.tick(world.now)[1] == []


def test_an_attempt_past_its_timeout_is_stopped_and_retried() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.join(dataclasses.replace(node(NodeType.Worker, "w"), protocol_version=2))
    beat(world, worker)
    task_id, _ = world.submit(client, timeout_seconds=10, max_retries=1)
    world.now += 30  # queued on the worker: the clock starts when it runs
    beat(world, worker)
    start(world, worker, task_id)
    world.now += 9
    beat(world, worker)
    assert kinds(world.core.tick(world.now)[0]) == []
    world.now += 2
    outbox, _ = world.core.tick(world.now)
    assert [(peer, msg.WIRE_NAME) for peer, msg in outbox] == [(worker.id, "TaskCancel")]
    record = world.core.store.records[task_id]
    assert record.status == "Pending" and record.errors == ("timed out after 10 s",)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    world = World()
    pauses = [world.core.liveness.retry_backoff.pause(n, random.random) for n in range(1, 8)]
    for attempt, pause in enumerate(pauses, 1):
        full = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert full / 2 <= pause <= full
    assert max(pauses) <= 4.0


def test_a_task_that_keeps_killing_its_workers_fails() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    task_id, _ = world.submit(client, max_retries=0)  # lost workers do not use retries
    for round_ in range(4):
        world.now += 10  # past any backoff
        victim = world.worker(f"victim-{round_}")
        world.core.tick(world.now)
        assert world.core.store.records[task_id].worker == victim.id
        start(world, victim, task_id)
        world.core.leave(victim.id, world.now)  # the worker died while running it
    record = world.core.store.records[task_id]
    assert record.status == "Failed"
    assert record.state.error == (  # type: ignore[attr-defined]
        "lost 4 workers while running: attempt 1: lost its worker victim-0; attempt 2: lost "
        "its worker victim-1; attempt 3: lost its worker victim-2; attempt 4: lost its worker "
        "victim-3"
    )


def test_a_cancelled_task_waiting_for_its_retry_stays_cancelled() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    task_id, _ = world.submit(client, max_retries=3)
    world.result(worker, task_id, ok=False)
    world.send(client, m.TaskCancel(task_id=task_id, requested_by=client.id, reason=None))
    world.now += 60
    assert kinds(world.core.tick(world.now)[0]) == []
    assert world.state(task_id) == "Cancelled"


def test_an_assignment_never_acknowledged_goes_to_another_worker() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    mute = world.worker("mute")  # alive (it heartbeats) but never acknowledges
    task_id, _ = world.submit(client)
    other = world.worker("other")
    world.now += 4
    beat(world, mute)
    assert world.core.tick(world.now)[0] == [] and world.state(task_id) == "Scheduled"
    world.now += 2  # five seconds without an acknowledgement
    beat(world, mute), beat(world, other)
    outbox, dead = world.core.tick(world.now)
    assert dead == [] and kinds(outbox, other) == ["TaskAssign"]
    assert world.core.store.records[task_id].worker == other.id


def test_an_acknowledged_assignment_may_wait_in_a_worker_queue() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    task_id, _ = world.submit(client)
    world.send(
        worker, m.TaskAssignAck(task_id=task_id, accepted=True, worker_id=worker.id, reason=None)
    )
    for _ in range(5):
        world.now += 3
        beat(world, worker)
        world.core.tick(world.now)
    assert world.core.store.records[task_id].worker == worker.id


def test_a_retry_prefers_a_worker_that_has_not_tried_the_task() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    first = world.worker("first", slots=2)
    task_id, outbox = world.submit(client, max_retries=1)
    assert [peer for peer, msg in outbox if msg.WIRE_NAME == "TaskAssign"] == [first.id]
    second = world.worker("second", slots=1)  # busier by its share of slots, once given one
    world.result(first, task_id, ok=False)
    world.now += 1
    outbox, _ = world.core.tick(world.now)
    assert [peer for peer, msg in outbox if msg.WIRE_NAME == "TaskAssign"] == [second.id]


def test_a_v4_worker_gets_only_what_it_offers_and_nothing_before_its_offer() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    peer = world.worker("v4", slots=2, version=4)  # joined and heartbeat: eligible, but
    assert peer.version == 4
    count = TaskPayload.Data(function="word_count", data=b"a b")
    task_id, outbox = world.submit(client, payload=count)
    assert kinds(outbox) == ["TaskSubmitAck"]  # no offer yet: not given anything
    offer = m.WorkerOffer(functions=("echo",), reduce_functions=(), modules=(), commands=())
    assert kinds(world.send(peer, offer)) == []  # it does not offer word_count
    record = world.core.store.get(task_id)
    assert record is not None and world.state(task_id) == "Pending"
    world.now += 1
    world.core.tick(world.now)
    assert record.waiting == "no connected worker offers function 'word_count'"
    offer = dataclasses.replace(offer, functions=("echo", "word_count"))
    assert kinds(world.send(peer, offer)) == ["TaskAssign"]
    hostile = dataclasses.replace(offer, functions=("x" * 300,))
    assert kinds(world.send(peer, hostile)) == ["Error"]
    assert kinds(world.send(client, offer)) == ["Error"]  # only a worker offers


def test_finished_tasks_are_forgotten_oldest_first_by_age_and_by_bytes() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=3)
    big = TaskPayload.Data(function="echo", data=b"x" * 1000)
    ids = []
    for _ in range(3):
        task_id, _ = world.submit(client, payload=big)
        world.result(worker, task_id, data=b"y" * 1000)
        ids.append(task_id)
        world.now += 1
    store = world.core.store
    pending, _ = world.submit(client, payload=big)  # never forgotten: it is not finished
    assert store.retained_total == 7000
    assert store.purge(world.now, retention=60, max_bytes=10_000) == []
    assert store.purge(world.now, retention=60, max_bytes=5000) == ids[:1]  # oldest first
    assert store.retained_total == 5000 and store.get(ids[1]) is not None
    assert store.purge(world.now, retention=60, max_bytes=0) == ids[1:]  # not the pending one
    assert store.get(pending) is not None and store.retained_total == 1000
    assert store.bytes_by_client[client.id] == 1000
    world.result(worker, pending, data=b"")
    world.now += 61
    assert store.purge(world.now, retention=60) == [pending]  # by age
    assert store.retained_total == 0 and not store.records


def test_a_task_others_depend_on_is_not_forgotten_before_they_finish() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=2)
    store = world.core.store
    a, _ = world.submit(client)
    world.result(worker, a, data=b"1")
    b, _ = world.submit(client)  # still running when a's retention ends
    reduce = TaskPayload.Reduce(function="sum", intermediate_results=())
    r, _ = world.submit(client, payload=reduce, dependencies=(a, b))
    world.now += world.core.policy.retention + 1
    assert store.purge(world.now, world.core.policy.retention, max_bytes=0) == []
    outbox = world.result(worker, b, data=b"2")  # now the reduce runs, with a's result
    (assign,) = [msg for _, msg in outbox if isinstance(msg, m.TaskAssign)]
    assert assign.task.id == r
    assert assign.task.payload.intermediate_results == (b"1", b"2")  # type: ignore[attr-defined]
    assert store.purge(world.now, world.core.policy.retention) == []  # r still runs
    world.result(worker, r, data=b"3")
    assert store.purge(world.now, world.core.policy.retention) == [a]  # its turn came again
    world.now += world.core.policy.retention
    assert store.purge(world.now, world.core.policy.retention) == [b, r]
    assert not store.records and store.retained_total == 0


def test_new_tasks_share_one_pending_state() -> None:
    """A client may hold many tasks until they are answered: what every new task has in
    common (its Pending state, frozen and without fields) is one object."""
    from vistrit.submission import new_task

    first, second = (
        new_task(TaskPayload.Data(function="echo", data=b""), "n", uuid.uuid4()) for _ in range(2)
    )
    assert first.state is second.state and isinstance(first.state, TaskState.Pending)
    assert first.id != second.id


def test_the_reasons_of_waiting_tasks_are_looked_at_again_only_after_a_change() -> None:
    """The look goes through every queued task under the lock: a second's tick that
    follows no change of the workers, and no task back in the queues, looks at none."""
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker("v4", slots=1, version=4)
    offer = m.WorkerOffer(functions=("echo",), reduce_functions=(), modules=(), commands=())
    world.send(worker, offer)  # offers echo only: word_count tasks wait, with a reason
    first, _ = world.submit(client)
    later, _ = world.submit(client, dependencies=(first,))
    looked: list[object] = []
    reason_of = world.core.registry.waiting_reason
    world.core.registry.waiting_reason = lambda *shape: looked.append(shape) or reason_of(*shape)  # type: ignore[method-assign]

    def tick() -> int:
        looked.clear()
        world.now += 1
        world.core.tick(world.now)
        return len(looked)

    assert tick() == 1  # this core's first look: the one task queued
    world.send(worker, heartbeat(worker.id, int(world.now)))  # a beat that changes nothing
    assert tick() == 0
    assert kinds(world.send(worker, dataclasses.replace(offer, functions=("word_count",)))) == [
        "TaskAssign"
    ]  # a change: the queue is looked at again (empty now)
    beat = dataclasses.replace(heartbeat(worker.id, int(world.now)), state=NodeState.Draining)
    world.send(worker, beat)
    assert tick() == 0
    world.result(worker, first)  # the dependent enters the queue; the worker takes no more
    assert world.state(later) == "Pending"
    assert tick() == 1
    record = world.core.store.get(later)
    assert record is not None and record.waiting == "no worker is connected"
    assert tick() == 0
