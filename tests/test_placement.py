"""Least-loaded placement from the heap of free workers (vistrit.logic.placement): it
orders as the rule says, drops only stale entries, stays small, and places every task on
the same worker as the plain scan, in random runs of joins, tasks, results, drains and
departures."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nodes import heartbeat
from test_logic import World, node

from vistrit.defaults import QUICK_RUNS
from vistrit.logic.placement import FreeWorkers
from vistrit.logic.registry import Registry
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import NodeState, NodeType, TaskState

pytestmark = pytest.mark.timeout(120)


def entries(registry: Registry, *slots: int) -> list[Any]:
    found = []
    for count in slots:
        hello = node(NodeType.Worker, f"w{len(found)}", count)
        entry = registry.add(hello.node_info, 0.0)
        registry.heartbeat(entry.id, NodeState.Ready, 0.0)
        found.append(entry)
    return found


def test_the_least_loaded_share_comes_first_then_the_earliest_joined() -> None:
    registry = Registry()
    small, big = entries(registry, 1, 4)
    assert registry.free.best(lambda w: True) is small  # both idle: the earlier one
    registry.hold(small, uuid.uuid4())
    assert registry.free.best(lambda w: True) is big  # small is full
    registry.hold(big, uuid.uuid4())
    registry.hold(big, uuid.uuid4())
    assert registry.free.best(lambda w: True) is big  # 2 of 4 used, and small has no slot
    registry.release(small.id, next(iter(small.running)))
    assert registry.free.best(lambda w: True) is small  # 0 of 1 beats 2 of 4


def test_workers_that_do_not_fit_are_kept_and_stale_entries_dropped() -> None:
    registry = Registry()
    first, second, third = entries(registry, 1, 1, 1)
    assert registry.free.best(lambda w: w is third) is third
    assert registry.free.best(lambda w: True) is first  # the ones passed over are still there
    registry.remove(first.id, 1.0)
    assert registry.free.best(lambda w: True) is second  # a departed worker is never picked
    registry.heartbeat(second.id, NodeState.Draining, 1.0)
    assert registry.free.best(lambda w: True) is third  # nor a draining one
    assert registry.free.best(lambda w: False) is None


def test_the_heap_stays_within_a_few_entries_a_worker() -> None:
    registry = Registry()
    workers = entries(registry, 2, 2, 2)
    for n in range(10_000):
        worker = workers[n % 3]
        task = uuid.uuid4()
        registry.hold(worker, task)
        registry.release(worker.id, task)
    assert len(registry.free._heap) <= 4 * len(workers) + 16
    assert len(registry.free) == 3


def test_an_update_while_placing_counts_what_is_being_placed() -> None:
    free = FreeWorkers()
    registry = Registry()
    (worker,) = entries(registry, 2)
    free.update(worker, placed=1)
    assert free.best(lambda w: True) is worker
    free.update(worker, placed=2)  # both slots promised: not free any more
    assert free.best(lambda w: True) is None


def test_quick_runs_deepen_a_worker_s_queue_and_any_other_run_takes_it_back() -> None:
    registry = Registry(quick_prefetch=4)
    hello = node(NodeType.Worker, "w", 1)
    entry = registry.add(hello.node_info, 0.0, prefetch=1)
    registry.heartbeat(entry.id, NodeState.Ready, 0.0)
    for _ in range(QUICK_RUNS - 1):
        registry.ran(entry.id, quick=True)
    assert entry.capacity == 2  # its one slot and one queued: not quick enough yet
    registry.ran(entry.id, quick=True)
    assert entry.capacity == 5  # its slot and four queued
    tasks = [uuid.uuid4() for _ in range(3)]
    for task in tasks:
        registry.hold(entry, task)
    assert registry.free.best(lambda w: True) is entry  # 3 of 5 held: room for more
    registry.ran(entry.id, quick=False)  # a longer run (or a Running status)
    assert entry.capacity == 2 and entry.free == 0  # what is queued stays queued
    assert registry.free.best(lambda w: True) is None  # the heap was told: no room now
    registry.release(entry.id, tasks[0])
    registry.release(entry.id, tasks[1])
    assert registry.free.best(lambda w: True) is entry  # 1 of 2 held


@pytest.mark.parametrize(
    ("prefetch", "quick_prefetch", "capacity"),
    [(0, 4, 1), (1, 0, 2), (8, 4, 9), (2, 16, 17)],
)
def test_a_queue_deepens_only_from_a_prefetch_and_never_becomes_shallower(
    prefetch: int, quick_prefetch: int, capacity: int
) -> None:
    registry = Registry(quick_prefetch=quick_prefetch)
    hello = node(NodeType.Worker, "w", 1)
    entry = registry.add(hello.node_info, 0.0, prefetch=prefetch)
    for _ in range(QUICK_RUNS):
        registry.ran(entry.id, quick=True)
    assert entry.capacity == capacity  # prefetch 0 is strict priority order, quick or not


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("join"), st.integers(1, 3), st.sampled_from([(), ("gpu",)]), st.integers(1, 2)
        ),
        st.tuples(st.just("submit"), st.sampled_from([(), (), ("gpu",)]), st.integers(1, 6)),
        st.tuples(st.just("finish"), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("quick"), st.integers(0, 7), st.integers(1, QUICK_RUNS + 1)),
        st.tuples(st.just("running"), st.integers(0, 7), st.just(0)),
        st.tuples(st.just("drain"), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("leave"), st.integers(0, 7), st.just(0)),
    ),
    max_size=60,
)


# A worker's queue deepens after quick runs, and its Running status makes it shallow again
# while it holds more than its capacity now: random runs seldom get that far.
DEEP_THEN_SHALLOW = [
    ("join", 1, (), 2),
    ("submit", (), 6),
    ("submit", (), 6),
    ("quick", 0, QUICK_RUNS),
    ("running", 0, 0),
    ("submit", (), 1),
]


@settings(max_examples=150, deadline=None)
@example(DEEP_THEN_SHALLOW)
@given(OPERATIONS)
def test_the_heap_places_every_task_where_the_scan_would(operations: list[Any]) -> None:
    fast, plain = World(), World()
    plain.core.scheduler.indexed = False
    workers: list[Any] = []
    clients = {id(w): w.join(node(NodeType.Client, "c")) for w in (fast, plain)}
    for operation in operations:
        kind = operation[0]
        if kind == "join":  # a v2 worker prefetches: its queue deepens after quick runs
            hello = node(NodeType.Worker, f"w{len(workers)}", operation[1], operation[2])
            hello = dataclasses.replace(hello, protocol_version=operation[3])
            pairs = [w.join(hello) for w in (fast, plain)]
            outboxes = [
                w.send(p, heartbeat(p.id, int(w.now))) for w, p in zip((fast, plain), pairs)
            ]
            workers.append(pairs[0])
        elif kind == "submit":
            outboxes = [[], []]
            for _ in range(operation[2]):
                task = dataclasses.replace(word_count_task(), id=uuid.uuid4(), tags=operation[1])
                for n, w in enumerate((fast, plain)):
                    submit = m.TaskSubmit(task=task, request_id=uuid.uuid4())
                    outboxes[n] += w.send(clients[id(w)], submit)
        elif not workers:
            continue
        else:
            worker = workers[operation[1] % len(workers)]
            outboxes = [_act(w, worker, kind, operation[2]) for w in (fast, plain)]
        assert _assignments(outboxes[0]) == _assignments(outboxes[1]), operation
        fast.now += 0.01
        plain.now += 0.01


def _act(world: World, worker: Any, kind: str, flag: bool) -> list[Any]:
    entry = world.core.registry.get(worker.id)
    if entry is None:
        return []
    if kind == "leave":
        return world.core.leave(worker.id, world.now)
    if kind == "drain":
        state = NodeState.Draining if flag else NodeState.Ready
        beat = dataclasses.replace(heartbeat(worker.id, int(world.now)), state=state)
        return world.send(worker, beat)
    if kind == "running" and entry.running:  # a Running status: its runs are not quick
        task_id = sorted(entry.running, key=str)[0]
        state = TaskState.Running(worker_id=worker.id, started_at=int(world.now), progress=None)
        status = m.TaskStatus(
            task_id=task_id, worker_id=worker.id, state=state, progress=None, message=None
        )
        return world.send(worker, status)
    if kind == "quick":  # *flag* results in a row, each under a millisecond
        outbox = []
        for _ in range(int(flag)):
            if entry.running:
                task_id = sorted(entry.running, key=str)[0]
                outbox += world.result(worker, task_id, duration_ms=0)
        return outbox
    if not entry.running:
        return []
    return world.result(worker, sorted(entry.running, key=str)[0], ok=flag)


def _assignments(outbox: list[Any]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(node_id, msg.task.id) for node_id, msg in outbox if isinstance(msg, m.TaskAssign)]


def test_a_reason_to_wait_is_worked_out_again_after_every_change_of_the_workers() -> None:
    registry = Registry()
    need = ("function", "shout")
    assert registry.waiting_reason(need, frozenset()) == "no worker is connected"
    hello = node(NodeType.Worker, "w", 1)
    entry = registry.add(hello.node_info, 0.0, needs_offer=True)
    assert registry.waiting_reason(need, frozenset()) == "no worker is connected"  # no beat
    registry.heartbeat(entry.id, NodeState.Ready, 0.0)
    assert registry.waiting_reason(need, frozenset()) == "no worker is connected"  # no offer
    registry.offered(entry, {"function": frozenset({"echo"})})
    assert (
        registry.waiting_reason(need, frozenset()) == "no connected worker offers function 'shout'"
    )
    registry.offered(entry, {"function": frozenset({"shout"})})
    assert registry.waiting_reason(need, frozenset()) is None
    assert registry.waiting_reason(need, frozenset({"gpu"})) == (
        "no connected worker has the tag(s) gpu"
    )
    changes = registry.changes
    registry.heartbeat(entry.id, NodeState.Ready, 0.5)  # changes nothing: counted as none
    assert registry.changes == changes
    registry.heartbeat(entry.id, NodeState.Draining, 1.0)
    assert registry.waiting_reason(need, frozenset()) == "no worker is connected"
    registry.heartbeat(entry.id, NodeState.Ready, 2.0)
    assert registry.waiting_reason(need, frozenset()) is None
    registry.remove(entry.id, 3.0)
    assert registry.waiting_reason(need, frozenset()) == "no worker is connected"
    assert registry.changes == changes + 3
