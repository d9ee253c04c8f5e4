"""Large payloads let go once their client has them (TaskOutcomeAck, v4): the client
confirms a large outcome, the coordinator drops its input and result, journals and
replicates that, and a later reader is told the result is gone, never given an empty one."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import uuid
from pathlib import Path

import pytest
from nodes import Cluster, restarted, wait_until
from test_logic import World, node

from vistrit import defaults
from vistrit.client import TaskError, TaskFuture
from vistrit.coordinator import Coordinator, recovery, release
from vistrit.logic.store import RELEASED
from vistrit.logic.tasks import TaskRecord
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import NodeType, TaskPayload, TaskState

pytestmark = pytest.mark.timeout(60)

LARGE = defaults.RELEASE_BYTES


def _record(cluster: Cluster, task_id: uuid.UUID) -> TaskRecord:
    core = cluster.coordinator.core
    assert core is not None
    record = core.store.get(task_id)
    assert record is not None
    return record


def _released(record: TaskRecord) -> bool:
    return record.result is not None and record.result.error == RELEASED


def test_a_large_result_is_let_go_once_its_client_has_it(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    data = bytes(range(256)) * (LARGE // 256 + 1)
    future = client.submit("echo", data)
    assert future.result(20) == data  # the client has it, whole
    record = _record(cluster, future.task_id)
    wait_until(lambda: _released(record), what="the coordinator to let the payload go")
    assert record.status == "Completed" and record.result is not None
    assert record.result.data is None and record.result.success
    assert isinstance(record.task.payload, TaskPayload.Data) and record.task.payload.data == b""
    core = cluster.coordinator.core
    assert core is not None and core.store.retained_total == 0
    # Anyone asking later learns that the result is gone, never that it was empty.
    info = cluster.client().wait(future.task_id, timeout=10)
    assert info.state == "Completed" and info.output is None and info.error == RELEASED
    # A future settled by such an answer (its client reconnected and asked) fails.
    late = TaskFuture(None, future.task_id)  # type: ignore[arg-type]
    late._settle(info.task.state, info.result)
    with pytest.raises(TaskError, match="its result is gone: released"):
        late.result(0)


def test_a_small_result_is_kept_for_its_retention(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    small = client.submit("echo", b"tiny")
    large = client.submit("echo", b"x" * LARGE)
    assert small.result(20) == b"tiny" and large.result(20) == b"x" * LARGE
    wait_until(lambda: _released(_record(cluster, large.task_id)), what="the large release")
    kept = _record(cluster, small.task_id)  # its ack, had there been one, came before
    assert kept.result is not None and kept.result.data == b"tiny"
    assert cluster.client().wait(small.task_id, timeout=10).output == b"tiny"


def _finished_large(world: World) -> tuple[object, uuid.UUID]:
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker("w")
    task_id, _ = world.submit(client, payload=TaskPayload.Data(function="echo", data=b"x" * LARGE))
    world.result(worker, task_id, data=b"y" * LARGE)
    assert world.state(task_id) == "Completed"
    return client, task_id


def test_only_the_tasks_own_client_may_let_it_go_and_only_once_finished() -> None:
    world = World()
    owner, task_id = _finished_large(world)
    stranger = world.join(node(NodeType.Client, "someone else"))
    assert world.send(stranger, m.TaskOutcomeAck(task_ids=(task_id, uuid.uuid4()))) == []
    record = world.core.store.get(task_id)
    assert record is not None and record.result is not None and record.result.data
    unfinished, _ = world.submit(owner)  # type: ignore[arg-type]
    world.core.take_journal()
    world.send(owner, m.TaskOutcomeAck(task_ids=(unfinished, task_id)))  # type: ignore[arg-type]
    assert _released(record)
    assert world.core.take_journal() == [m.TaskOutcomeAck(task_ids=(task_id,))]
    assert world.core.store.retained_total == len(word_count_task().payload.data)  # type: ignore[attr-defined]


def test_an_ack_naming_too_many_tasks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    owner, task_id = _finished_large(world)
    monkeypatch.setattr(release, "MAX_IDS", 2)
    (answer,) = world.send(owner, m.TaskOutcomeAck(task_ids=(task_id,) * 3))  # type: ignore[arg-type]
    assert isinstance(answer[1], m.Error) and "at most 2 tasks" in answer[1].message
    record = world.core.store.get(task_id)
    assert record is not None and not _released(record)


def test_a_task_that_an_unfinished_reduce_depends_on_is_kept() -> None:
    world = World()
    owner, task_id = _finished_large(world)
    reduce = TaskPayload.Reduce(function="sum", intermediate_results=())
    waiting, _ = world.submit(owner, payload=reduce, dependencies=(task_id,))  # type: ignore[arg-type]
    world.send(owner, m.TaskOutcomeAck(task_ids=(task_id,)))  # type: ignore[arg-type]
    record = world.core.store.get(task_id)
    assert record is not None and not _released(record)  # the reduce is fed its result
    assert world.state(waiting) != "Completed"


def _holder(world: World, task_id: uuid.UUID) -> object:
    record = world.core.store.get(task_id)
    assert record is not None and record.worker is not None
    return world.core.peers[record.worker]


def test_a_reduce_whose_input_was_let_go_fails_saying_so_and_is_never_fed_the_rest() -> None:
    world = World()
    owner, released = _finished_large(world)
    world.send(owner, m.TaskOutcomeAck(task_ids=(released,)))  # type: ignore[arg-type]
    kept, _ = world.submit(owner)  # type: ignore[arg-type]
    worker = _holder(world, kept)
    world.result(worker, kept)
    reduce = TaskPayload.Reduce(function="sum", intermediate_results=())
    late, outbox = world.submit(owner, payload=reduce, dependencies=(kept, released))  # type: ignore[arg-type]
    assert not any(isinstance(msg, m.TaskAssign) for _, msg in outbox)  # never sent to run
    record = world.core.store.get(late)
    assert record is not None and record.status == "Failed"
    assert "result was let go: its client had collected it" in record.state.error  # type: ignore[attr-defined]
    old, _ = world.submit(owner)  # type: ignore[arg-type]
    world.result(_holder(world, old), old)
    busy, _ = world.submit(owner)  # type: ignore[arg-type]  # holds the one slot
    waiting, _ = world.submit(owner, payload=reduce, dependencies=(old,))  # type: ignore[arg-type]
    assert world.state(waiting) == "Pending"
    # Past its retention, but a waiting reduce depends on it: it is not forgotten.
    assert old not in world.core.store.purge(world.now + 7200, world.core.policy.retention)
    outbox = world.result(_holder(world, busy), busy)  # the slot is free: the reduce's turn
    (assign,) = [msg for _, msg in outbox if isinstance(msg, m.TaskAssign)]
    assert assign.task.id == waiting and assign.task.payload.intermediate_results  # type: ignore[attr-defined]


def test_a_release_is_replayed_from_the_journal_after_a_restart(tmp_path: Path) -> None:
    first = Coordinator(("127.0.0.1", 0), data_dir=tmp_path)
    first.start()
    running = Cluster(first)
    try:
        running.add_worker()
        client = running.client()
        future = client.submit("echo", b"z" * LARGE)
        assert future.result(20) == b"z" * LARGE
        wait_until(lambda: _released(_record(running, future.task_id)), what="the release")
        client.cluster_status()  # a round trip: the release is on disk by now
    finally:
        running.stop()
    with restarted(tmp_path) as again:
        assert again.core is not None
        record = again.core.store.get(future.task_id)
        assert record is not None and record.status == "Completed" and _released(record)
        assert again.core.store.retained_total == 0


def test_a_replayed_release_of_an_unknown_or_unfinished_task_changes_nothing() -> None:
    world = World()
    owner = world.join(node(NodeType.Client, "c"))
    big = dataclasses.replace(word_count_task(b"w " * LARGE), id=uuid.uuid4())
    world.send(owner, m.TaskSubmit(task=big, request_id=uuid.uuid4()))
    before = world.core.store.retained_total
    recovery.replay(world.core, m.TaskOutcomeAck(task_ids=(big.id, uuid.uuid4())), world.now)
    assert world.core.store.retained_total == before == 2 * LARGE


def test_a_large_outcome_learnt_by_asking_is_let_go_too(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcome pushed to the client is lost (say, while it reconnected); it asks, the
    answer settles its future, and it confirms that outcome as it would a pushed one."""
    from vistrit import client as client_module

    cluster.add_worker()
    client = cluster.client()
    lost: list[uuid.UUID] = []
    monkeypatch.setitem(
        client_module.ON_MESSAGE, m.TaskOutcome, lambda _, message: lost.append(message.task_id)
    )
    data = b"z" * LARGE
    future = client.submit("echo", data)
    wait_until(lambda: future.task_id in lost, what="the outcome to be pushed (and lost)")
    assert not future.done()
    assert client.status(future.task_id).state == "Completed"
    assert future.result(0) == data  # settled by the answer to the question
    record = _record(cluster, future.task_id)
    wait_until(lambda: _released(record), what="the coordinator to let the payload go")
    second = client.submit("echo", data)
    wait_until(lambda: second.task_id in lost, what="the second outcome (lost)")
    other = cluster.client()  # not its client: its asking lets nothing go
    assert other.status(second.task_id).output == data
    other.cluster_status()  # a round trip after it: a confirmation would have arrived
    assert not _released(_record(cluster, second.task_id))


class _OutcomeFirst:
    """A client whose coordinator pushes the task's Cancelled outcome (the reader thread
    settles the future) before it answers the caller's own cancel, as a coordinator does."""

    def __init__(self) -> None:
        self.future: TaskFuture | None = None

    def cancel(self, task_id: uuid.UUID) -> bool:
        assert self.future is not None
        self.future._settle(TaskState.Cancelled(cancelled_at=0), None)
        return True


def test_a_future_cancelled_by_its_outcome_and_its_answer_tells_its_waiters_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Told twice, a ``concurrent.futures.Future`` logs a CRITICAL "unexpected state"."""
    client = _OutcomeFirst()
    future = client.future = TaskFuture(client, uuid.uuid4())  # type: ignore[arg-type]
    waiting = threading.Thread(target=concurrent.futures.wait, args=([future], 30))
    waiting.start()
    with caplog.at_level(logging.WARNING, logger="concurrent.futures"):
        assert future.cancel() is True
    waiting.join(30)
    assert not waiting.is_alive() and future.cancelled()
    assert not [r for r in caplog.records if r.name == "concurrent.futures"]
