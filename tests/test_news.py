"""A quick function's Running status is held back (``vistrit.worker.news``): its result
acknowledges the task; a run that turns out long is reported at the next heartbeat."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import callables
import pytest
from nodes import Cluster, wait_until

from vistrit.protocol import messages as m
from vistrit.protocol.examples import WORKER, word_count_task
from vistrit.protocol.types import TaskPayload, TaskState
from vistrit.worker.news import MAX_REMEMBERED, HeldNews, what_runs

pytestmark = pytest.mark.timeout(60)


def task(function: str = "echo") -> m.Task:
    payload = TaskPayload.Data(function=function, data=b"x")
    return dataclasses.replace(word_count_task(b"x"), id=uuid.uuid4(), payload=payload)


def running(task_id: uuid.UUID) -> m.TaskStatus:
    state = TaskState.Running(worker_id=WORKER.id, started_at=1, progress=None)
    return m.TaskStatus(
        task_id=task_id, worker_id=WORKER.id, state=state, progress=None, message=None
    )


def test_a_function_is_reported_at_once_until_a_run_of_it_was_quick() -> None:
    news = HeldNews(quick=0.005)
    first = task()
    assert news.started(first, running(first.id)) == running(first.id)  # never ran: at once
    news.finished(first, 0.001)
    second = task()
    assert news.started(second, running(second.id)) is None  # held
    assert len(news) == 1
    news.finished(second, 0.5)  # it ended (slowly): its held status is dropped
    assert len(news) == 0 and news.take() == []
    third = task()
    assert news.started(third, running(third.id)) is not None  # the last run was slow
    other = task("uppercase")
    assert news.started(other, running(other.id)) is not None  # each function on its own


def test_what_is_held_is_taken_once_or_dropped_when_progress_is_reported() -> None:
    news = HeldNews()
    quick = task()
    news.finished(quick, 0.0)
    one, two = task(), task()
    assert news.started(one, running(one.id)) is None
    assert news.started(two, running(two.id)) is None
    news.reported(two.id)  # a progress report said it runs
    assert news.take() == [running(one.id)]
    assert news.take() == []


def ack(task_id: uuid.UUID) -> m.TaskAssignAck:
    return m.TaskAssignAck(task_id=task_id, accepted=True, worker_id=WORKER.id, reason=None)


def test_a_queued_task_s_acknowledgement_is_held_then_replaced_by_what_follows() -> None:
    news = HeldNews()
    first = task()
    assert news.queued(first, ack(first.id)) == ack(first.id)  # never ran: at once
    news.finished(first, 0.0)
    starts, ends, waits, handed = task(), task(), task(), task()
    for queued in (starts, ends, waits, handed):
        assert news.queued(queued, ack(queued.id)) is None  # quick last time: held
    assert news.started(starts, running(starts.id)) is None  # its Running takes the place
    news.finished(ends, 0.0)  # its result acknowledges it
    news.reported(handed.id)  # handed back: its refusal goes, not a held acceptance
    assert news.take() == [running(starts.id), ack(waits.id)]  # still queued: its ack
    slow = task("uppercase")
    news.finished(slow, 1.0)
    queued = task("uppercase")
    assert news.queued(queued, ack(queued.id)) == ack(queued.id)  # slow last time
    late = task()
    news.queued(late, ack(late.id))
    news.finished(task(), 1.0)  # a slow run: the next start is reported at once...
    assert news.started(late, running(late.id)) == running(late.id)
    assert news.take() == []  # ...and its held ack is not sent as well


def test_a_prefetched_quick_task_is_acknowledged_only_by_what_follows(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=1)  # one slot, and one task prefetched beyond it
    client = cluster.client()
    acks: list[m.TaskAssignAck] = []
    cluster.coordinator.frame_tap = lambda way, _, msgs: acks.extend(
        msg for msg in msgs if way == "in" and type(msg) is m.TaskAssignAck
    )
    at_heartbeats: list[object] = []  # held acks a heartbeat sent: a task still queued then
    take = worker._news.take

    def taken() -> list[m.TaskStatus | m.TaskAssignAck]:
        news = take()
        at_heartbeats.extend(n for n in news if type(n) is m.TaskAssignAck)
        return news

    worker._news.take = taken  # type: ignore[method-assign]
    assert client.submit("uppercase", "a").result(10) == "A"  # now known to be quick
    futures = client.map("uppercase", ["b"] * 40)  # queued behind each other on the worker
    assert client.gather(futures, 30) == ["B"] * 40
    core = cluster.coordinator.core
    assert core is not None
    assert all(core.store.view(f.task_id).status == "Completed" for f in futures)  # type: ignore[union-attr]
    assert len(acks) == len(at_heartbeats)  # none sent as the task was queued


def test_the_functions_remembered_are_bounded() -> None:
    news = HeldNews()
    for n in range(MAX_REMEMBERED + 1):
        news.finished(task(f"f{n}"), 0.0)
    assert news.started(task("f0"), running(uuid.uuid4())) is not None  # forgotten
    assert what_runs(task("f1")) == "Data f1"


def _statuses(cluster: Cluster) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    cluster.coordinator.frame_tap = lambda way, _, msgs: seen.extend(
        msg.task_id for msg in msgs if way == "in" and type(msg) is m.TaskStatus
    )
    return seen


def test_a_quick_task_is_acknowledged_by_its_result_alone(cluster: Cluster) -> None:
    cluster.add_worker(slots=1)
    client = cluster.client()
    seen = _statuses(cluster)
    first = client.submit("uppercase", "a")
    assert first.result(10) == "A"
    assert seen == [first.task_id]  # its first run: reported at once
    later = [client.submit("uppercase", "b") for _ in range(5)]
    assert [f.result(10) for f in later] == ["B"] * 5
    assert seen == [first.task_id]  # quick, like the one before: no Running status
    core = cluster.coordinator.core
    assert core is not None and all(
        core.store.records[f.task_id].status == "Completed" for f in later
    )


def test_a_usually_quick_function_that_runs_long_is_reported_at_the_next_heartbeat(
    cluster: Cluster,
) -> None:
    cluster.add_worker(slots=1, modules=["callables"])  # heartbeats every 0.2 s
    client = cluster.client()
    seen = _statuses(cluster)
    gate = callables.GATES.setdefault("news", threading.Event())
    gate.set()
    assert client.submit(callables.wait_for_gate, "news").result(10) == "news"  # quick
    gate.clear()
    slow = client.submit(callables.wait_for_gate, "news")
    wait_until(slow.running, what="the long run to be reported at a heartbeat")
    assert slow.task_id in seen
    core = cluster.coordinator.core
    assert core is not None and core.store.records[slow.task_id].status == "Running"
    gate.set()
    assert slow.result(10) == "news"
