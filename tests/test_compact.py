"""A finished task is compacted at the next purge: a plain success keeps its result's data
only (its state holds the rest), and answers exactly as before."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from test_logic import World, node

from vistrit.logic.tasks import TaskRecord, whole_second
from vistrit.protocol import messages as m
from vistrit.protocol.examples import RESULT
from vistrit.protocol.types import NodeType, TaskResult

pytestmark = pytest.mark.timeout(30)


def finished(world: World, **result: object) -> tuple[TaskRecord, TaskResult]:
    """A task submitted and reported on by a worker with *result*'s fields changed."""
    client = world.join(node(NodeType.Client, f"c{world.now}"))
    worker = world.worker(f"w{world.now}")
    task_id, _ = world.submit(client)
    sent = dataclasses.replace(RESULT, task_id=task_id, duration_ms=3, worker_id=worker.id)
    sent = dataclasses.replace(sent, **result)  # type: ignore[arg-type]
    world.send(worker, m.TaskResultMessage(result=sent))
    record = world.core.store.records[task_id]
    return record, sent


def test_a_plain_success_keeps_only_its_data_and_answers_as_before() -> None:
    world = World()
    record, sent = finished(world)
    client = world.join(node(NodeType.Client, "asker"))
    (before,) = world.send(client, m.TaskQuery(task_id=record.id))
    assert isinstance(record.kept, TaskResult) and record.tried
    retained = world.core.store.retained_total
    assert world.core.store.purge(world.now, world.core.policy.retention) == []
    record = world.core.store.view(record.id)  # type: ignore[assignment]  # (packed)
    assert record.kept == b"6" and record.tried == ()
    assert record.result == sent and record.worker == sent.worker_id
    assert world.send(client, m.TaskQuery(task_id=record.id)) == [before]
    assert world.core.store.retained_total == retained  # the same bytes, counted the same
    assert world.core.store.compact() == 0  # each finished task once


@pytest.mark.parametrize(
    "changed",
    [
        {"stdout": "printed"},
        {"stderr": "warned"},
        {"worker_id": uuid.uuid4()},  # not who sent it: the worker's own word is kept
        {"data": None},
        {"exit_code": 0},  # a program's: its exit code is kept
    ],
)
def test_a_result_that_says_more_than_its_state_is_kept_whole(changed: dict[str, object]) -> None:
    world = World()
    record, sent = finished(world, **changed)
    world.core.store.compact()
    assert record.result == sent
    assert isinstance(record.kept, TaskResult) or record.kept is None


def test_tasks_that_end_in_the_same_second_share_its_number() -> None:
    first, second = whole_second(1_800_000_000.25), whole_second(1_800_000_000.75)
    assert first == second == 1_800_000_000 and first is second
    assert whole_second(1_800_000_001.0) == 1_800_000_001
