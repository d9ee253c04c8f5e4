"""Many tasks in one frame (TaskSubmitBatch, v4): the coordinator takes each task as its
own TaskSubmit and answers once; ``client.map`` sends batches to a v4 coordinator, and a
refused task fails its own future only."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from nodes import Cluster, restarted, wait_until
from test_logic import World, node

from vistrit.coordinator import Coordinator, batches
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import NodeType, SubmitRefusal, Task
from vistrit.results import TaskRejected
from vistrit.submission import BATCH_BYTES, BATCH_TASKS
from vistrit.submission import batches as cut

pytestmark = pytest.mark.timeout(60)


def tasks(count: int, data: bytes = b"a b") -> tuple[Task, ...]:
    return tuple(
        dataclasses.replace(word_count_task(data), id=uuid.uuid4(), name=f"t{n}")
        for n in range(count)
    )


def batch(items: tuple[Task, ...]) -> m.TaskSubmitBatch:
    return m.TaskSubmitBatch(request_id=uuid.uuid4(), tasks=items)


def test_each_task_is_taken_as_its_own_submit_and_answered_once() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    world.worker("w", slots=2)
    sent = batch(tasks(3))
    outbox = world.send(client, sent)
    ack = outbox[0][1]
    assert outbox[0][0] == client.id
    assert ack == m.TaskSubmitBatchAck(request_id=sent.request_id, accepted=3, refused=())
    assert not any(isinstance(msg, m.TaskSubmitAck) for _, msg in outbox)
    assigned = [msg.task.id for _, msg in outbox if isinstance(msg, m.TaskAssign)]
    assert assigned == [task.id for task in sent.tasks[:2]]  # two slots, in order
    journal = world.core.take_journal()
    assert [type(entry) for entry in journal] == [m.TaskSubmit] * 3  # nothing new to replay
    again = world.send(client, batch(sent.tasks))  # the same ids: idempotent
    assert again[0][1].accepted == 3
    assert len(world.core.store.records) == 3


def test_a_task_over_its_clients_quota_is_refused_alone() -> None:
    world = World()
    world.core.policy = dataclasses.replace(world.core.policy, max_pending_per_client=2)
    client = world.join(node(NodeType.Client, "c"))
    sent = batch(tasks(4))
    ack = world.send(client, sent)[0][1]
    assert ack.accepted == 2
    assert [r.task_id for r in ack.refused] == [t.id for t in sent.tasks[2:]]
    assert all(r.reason.startswith("quota: 2 unfinished tasks") for r in ack.refused)


def test_a_batch_with_an_id_twice_or_too_many_tasks_is_refused_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    first = tasks(1)[0]
    ack = world.send(client, batch((first, first)))[0][1]
    assert ack.accepted == 0 and "one task id twice" in ack.refused[0].reason
    monkeypatch.setattr(batches, "MAX_BATCH", 3)
    ack = world.send(client, batch(tasks(4)))[0][1]
    assert ack.accepted == 0 and len(ack.refused) == 4
    assert "at most 3 tasks" in ack.refused[0].reason
    assert not world.core.store.records


def test_the_client_cuts_batches_by_count_and_by_bytes() -> None:
    small = tasks(BATCH_TASKS * 2 + 1)
    assert [len(part) for part in cut(small)] == [BATCH_TASKS, BATCH_TASKS, 1]
    big = tasks(3, b"x" * (BATCH_BYTES // 2 + 1))
    assert [len(part) for part in cut(big)] == [1, 1, 1]
    huge = tasks(1, b"x" * (BATCH_BYTES + 1)) + tasks(2)
    assert [len(part) for part in cut(huge)] == [1, 2]  # a large task goes alone
    assert [t.id for part in cut(huge) for t in part] == [t.id for t in huge]


def _frames(cluster: Cluster) -> list[str]:
    seen: list[str] = []
    cluster.coordinator.frame_tap = lambda way, _, msgs: seen.extend(
        type(msg).__name__ for msg in msgs if way == "in"
    )
    return seen


def test_map_sends_batches_to_a_v4_coordinator(cluster: Cluster) -> None:
    cluster.add_worker(slots=4)
    client = cluster.client()
    seen = _frames(cluster)
    items = [f"word {n}" for n in range(BATCH_TASKS + 200)]
    futures = client.map("word_count", items)
    assert client.gather(futures, 30) == ["2"] * len(items)
    assert seen.count("TaskSubmitBatch") == 2 and "TaskSubmit" not in seen
    single = client.submit("word_count", "a b c")  # one task: a plain TaskSubmit
    assert single.result(10) == "3"
    assert seen.count("TaskSubmit") == 1


@pytest.mark.parametrize("cluster", [{"max_pending_per_client": 5}], indirect=True)
def test_a_refused_task_of_a_map_fails_its_own_future_only(cluster: Cluster) -> None:
    client = cluster.client()
    futures = client.map("word_count", [f"w{n}" for n in range(8)])  # no worker yet
    for future in futures[5:]:
        with pytest.raises(TaskRejected, match="quota: 5 unfinished tasks"):
            future.result(10)
    assert not any(future.done() for future in futures[:5])
    cluster.add_worker()
    assert client.gather(futures[:5], 30) == ["1"] * 5


def test_a_batch_is_journaled_and_replayed_task_by_task(tmp_path: Path) -> None:
    first = Coordinator(("127.0.0.1", 0), data_dir=tmp_path)
    first.start()
    running = Cluster(first)
    try:
        client = running.client()
        futures = client.map("word_count", ["a", "b c", "d e f"])  # no worker: they wait
        client.cluster_status()  # answered after the batch was taken
        ids = {future.task_id for future in futures}
    finally:
        running.stop()
    with restarted(tmp_path) as again:
        assert again.core is not None
        assert set(again.core.store.records) == ids
        assert all(r.status == "Pending" for r in again.core.store.records.values())


def test_a_future_is_accepted_once_acknowledged_and_again_after_a_reconnection() -> None:
    """``future.accepted``: set by the acknowledgement of a TaskSubmit or of the batch that
    carried the task (unless the task was refused); after a reconnection every unfinished
    task goes again, its acknowledgement awaited as the first time's."""
    import threading

    from vistrit.replies import Replies
    from vistrit.results import TaskFuture
    from vistrit.taskbook import TaskBook

    book = TaskBook(threading.Lock())
    replies = Replies()
    expect = replies.on_answer

    items = tasks(3)
    futures = [TaskFuture(None, t.id) for t in items]  # type: ignore[arg-type]
    (sent,) = book.submissions(list(items), futures, True, expect)
    assert isinstance(sent, m.TaskSubmitBatch) and not any(f.accepted.is_set() for f in futures)
    refusal = SubmitRefusal(task_id=items[2].id, reason="quota")
    reply = m.TaskSubmitBatchAck(request_id=sent.request_id, accepted=2, refused=(refusal,))
    assert replies.answer(sent.request_id, reply)
    assert [f.accepted.is_set() for f in futures] == [True, True, False]
    with pytest.raises(TaskRejected, match="quota"):
        futures[2].result(0)

    fresh = [TaskFuture(None, t.id) for t in items[:2]]  # type: ignore[arg-type]
    book2 = TaskBook(threading.Lock())
    (first,) = book2.submissions(list(items[:2]), fresh, True, expect)
    replies.fail(ConnectionError("lost"))  # no answer: no news
    assert not replies.answer(first.request_id, first)  # its waiter was told: gone
    assert not any(f.accepted.is_set() for f in fresh)
    (again,) = book2.resubmissions(True, expect)  # reconnected: both go again, as a batch
    assert isinstance(again, m.TaskSubmitBatch)
    assert {t.id for t in again.tasks} == {t.id for t in items[:2]}
    done = m.TaskSubmitBatchAck(request_id=again.request_id, accepted=2, refused=())
    assert replies.answer(again.request_id, done)
    assert not replies.answer(again.request_id, done)  # answered once
    assert all(f.accepted.is_set() for f in fresh)


def test_a_task_that_starts_at_once_is_acknowledged_by_its_running_status(
    cluster: Cluster,
) -> None:
    """A v4 worker sends no TaskAssignAck for a task it starts at once (its TaskStatus
    says so), and one for a task it queues (prefetch)."""
    import threading

    import callables

    cluster.add_worker(slots=1, modules=["callables"])
    seen = _frames(cluster)
    client = cluster.client()
    gate = callables.GATES.setdefault("ack", threading.Event())
    first = client.submit(callables.wait_for_gate, "ack")  # holds the only slot
    wait_until(first.running, what="the first task to run")
    second = client.submit(callables.identity, 2)  # prefetched: queued behind it
    wait_until(lambda: "TaskAssignAck" in seen, what="the queued task's acknowledgement")
    gate.set()
    assert first.result(30) == "ack" and second.result(30) == 2
    assert seen.count("TaskAssignAck") == 1  # the queued one only
    assert seen.count("TaskStatus") >= 2  # each ran: its Running status acknowledged it


def test_news_of_a_task_that_finished_in_the_same_outbox_is_not_sent() -> None:
    from vistrit.coordinator.offers import without_stale_news
    from vistrit.protocol.types import TaskState

    client, other, task = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    worker = uuid.uuid4()
    running = TaskState.Running(worker_id=worker, started_at=1, progress=None)
    news = m.TaskStatus(task_id=task, worker_id=worker, state=running, progress=None, message=None)
    done = m.TaskOutcome(task_id=task, state=TaskState.Cancelled(cancelled_at=2), result=None)
    assign = m.TaskCancel(task_id=task, requested_by=client, reason=None)
    assert without_stale_news([(client, news), (worker, assign), (client, done)]) == [
        (worker, assign),
        (client, done),
    ]
    kept = [(client, news), (other, done)]  # another client's outcome: the news stays
    assert without_stale_news(kept) == kept
    assert without_stale_news([(client, news)]) == [(client, news)]
