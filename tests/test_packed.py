"""A finished plain success is packed into one ``bytes`` at the next tick: it unpacks into
an equal record, what is read or changed through the store is the same as before, and it
takes far less memory."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import values_for
from test_logic import World, node

from vistrit.logic.packed import MAX_PACKED_BYTES, pack, unpack
from vistrit.logic.store import RELEASED, TaskStore
from vistrit.logic.tasks import PENDING_STATE, TaskRecord
from vistrit.protocol import messages as m
from vistrit.protocol.examples import RESULT, word_count_task
from vistrit.protocol.types import (
    NodeType,
    Task,
    TaskPayload,
    TaskState,
)

pytestmark = pytest.mark.timeout(60)

PACKED_KINDS = (TaskPayload.Data, TaskPayload.Call)
LIST = m.TaskListQuery(request_id=uuid.UUID(int=1), state="Completed", offset=0, limit=10)


def fields(record: TaskRecord) -> dict[str, object]:
    """Every field of *record*, to compare two records (they compare by identity)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


@st.composite
def finished_records(draw: st.DrawFn) -> TaskRecord:
    """A completed task as the coordinator holds it once compacted, any task at all."""
    task = dataclasses.replace(draw(values_for(Task.__wire__)), state=PENDING_STATE)
    state = draw(values_for(TaskState.Completed.__wire__))
    return TaskRecord(
        task=task,
        sequence=draw(st.integers(1, 2**62)),
        submitted_at=draw(st.floats(0, 2e9)),
        client=draw(st.none() | st.just(task.submitted_by) | st.uuids()),
        state=state,
        kept=draw(st.binary(max_size=64)),
        attempts=draw(st.integers(0, 2**32)),
        deadline=draw(st.none() | st.floats(0, 2e9)),
        lost_workers=draw(st.integers(0, 10)),
        acknowledged=draw(st.booleans()),
        finished_at=draw(st.floats(0, 2e9)),
    )


@given(finished_records())
def test_a_packed_task_unpacks_into_an_equal_record(record: TaskRecord) -> None:
    packed = pack(record)
    if not isinstance(record.task.payload, PACKED_KINDS):
        assert packed is None  # a shell command, map or reduce stays a record
        return
    assert packed is not None
    assert fields(unpack(record.id, packed)) == fields(record)


@pytest.mark.parametrize(
    "change",
    [
        {"errors": ("attempt 1 failed",)},
        {"excluded": {uuid.uuid4(): 5.0}},
        {"tried": (uuid.uuid4(),)},
        {"waiting": "no worker"},
        {"kept": RESULT},  # a result that says more than its state: kept whole
        {"state": TaskState.Cancelled(cancelled_at=5)},
        {"finished_at": None},
        {"kept": bytes(MAX_PACKED_BYTES)},  # a large task: its bytes are most of it
    ],
)
def test_what_is_not_the_common_case_stays_a_record(change: dict[str, object]) -> None:
    record = finished_by(World())
    assert pack(record) is not None
    assert pack(dataclasses.replace(record, **change)) is None  # type: ignore[arg-type]


def finished_by(world: World, data: bytes = b"in") -> TaskRecord:
    """A task submitted to *world*'s coordinator and completed by a worker, compacted."""
    client = world.join(node(NodeType.Client, f"c{world.now}"))
    worker = world.worker(f"w{world.now}")
    task_id, _ = world.submit(client)
    result = dataclasses.replace(RESULT, task_id=task_id, duration_ms=3, worker_id=worker.id)
    world.send(worker, m.TaskResultMessage(result=result))
    record = world.core.store.get(task_id)
    assert record is not None and record.finished
    record.compact()
    return record


def test_the_store_packs_at_the_tick_and_answers_as_before() -> None:
    world = World()
    record = finished_by(world)
    store = world.core.store
    asker = world.join(node(NodeType.Client, "asker"))
    (before,) = world.send(asker, m.TaskQuery(task_id=record.id))
    listed = world.send(asker, LIST)
    assert store.purge(world.now, world.core.policy.retention) == []
    assert isinstance(store.records[record.id], bytes)
    # Read: the same answers, and the task stays packed (reading does not unpack it).
    assert world.send(asker, m.TaskQuery(task_id=record.id)) == [before]
    assert world.send(asker, LIST) == listed
    assert store.count("Completed") == 1 and store.count("Pending") == 0
    assert [fields(r) for r in store.each()] == [fields(record)]
    assert fields(store.newest(1)[0]) == fields(store.recently_finished(1)[0]) == fields(record)
    assert isinstance(store.records[record.id], bytes)
    assert store.compact() == 0


def test_a_task_changed_through_the_store_keeps_the_change() -> None:
    world = World()
    store = world.core.store
    record = finished_by(world, b"x" * 100)
    store.compact()
    assert isinstance(store.records[record.id], bytes)
    whole = store.get(record.id)  # unpacked, and kept whole until the next compaction
    assert whole is not None and store.records[record.id] is whole
    retained = store.retained_total
    assert store.release(whole) > 0
    assert store.retained_total < retained
    assert store.compact() == 1  # looked at again; released, so no longer packable
    kept = store.get(record.id)
    assert kept is whole and kept.result is not None and kept.result.error == RELEASED


def test_a_packed_task_is_forgotten_with_its_counts() -> None:
    world = World()
    store = world.core.store
    record = finished_by(world)
    assert record.client is not None
    store.compact()
    assert store.bytes_by_client[record.client] > 0
    later = world.now + world.core.policy.retention
    assert store.purge(later, world.core.policy.retention) == [record.id]
    assert record.id not in store.records
    assert store.bytes_by_client[record.client] == 0 and store.retained_total == 0


def test_a_packed_task_takes_far_less_memory() -> None:
    """tracemalloc counts every object allocated for the tasks, whatever the allocator
    does with pages: the store's dict, each record and everything it holds."""
    client, worker = uuid.uuid4(), uuid.uuid4()
    echo = dataclasses.replace(word_count_task(), name="echo", submitted_by=client)

    def remember(packed: bool, tasks: int = 2_000) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            store = TaskStore()
            for n in range(tasks):
                task = dataclasses.replace(
                    echo,
                    id=uuid.uuid4(),
                    payload=TaskPayload.Data(function="echo", data=b"%16d" % n),
                )
                record = store.add(task, 0.0, client)
                record.assigned(worker, 0.0)
                record.completed(worker, 1, 0.0)
                record.result = dataclasses.replace(
                    RESULT, task_id=task.id, data=b"%16d" % n, duration_ms=1, worker_id=worker
                )
                store.count_final(record)
            if packed:
                store.compact()
            else:  # compacted, as before packing
                for record in store.each():
                    record.compact()
            gc.collect()
            return (tracemalloc.get_traced_memory()[0] - before) / tasks
        finally:
            tracemalloc.stop()

    whole, packed = remember(False), remember(True)
    assert packed < 0.6 * whole, (whole, packed)  # 651 and 362 bytes when written
