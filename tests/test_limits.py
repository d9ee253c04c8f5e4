"""Limits, on the coordinator's core (fake clock) and on the decoder: quotas per client,
bounded names and tags, a task too large to assign, memory given back after big frames,
and housekeeping that goes on when a handler fails."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import uuid

import pytest
from nodes import Cluster, join_raw, wait_until
from test_logic import T0, World, node

from vistrit.coordinator.limits import ASSIGN_BYTES
from vistrit.defaults import MAX_NAME_CHARS, MAX_TAGS, Policy
from vistrit.protocol import FrameDecoder, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.examples import WORKER, word_count_task
from vistrit.protocol.types import NodeType, TaskPayload

pytestmark = pytest.mark.timeout(60)


def refused(outbox: list[tuple[uuid.UUID, m.Message]]) -> str:
    [(_, ack)] = outbox
    assert isinstance(ack, m.TaskSubmitAck) and not ack.accepted
    return ack.reason or ""


def quota_world(**policy: object) -> World:
    world = World()
    world.core.policy = dataclasses.replace(world.core.policy, **policy)  # type: ignore[arg-type]
    return world


def test_a_client_past_its_quota_of_unfinished_tasks_is_refused_and_others_are_not() -> None:
    world = quota_world(max_pending_per_client=3)
    greedy = world.join(node(NodeType.Client, "greedy"))
    modest = world.join(node(NodeType.Client, "modest"))
    for _ in range(3):
        world.submit(greedy)
    _, outbox = world.submit(greedy)
    assert refused(outbox).startswith("quota: 3 unfinished tasks per client")
    _, outbox = world.submit(modest)
    assert kinds_of(outbox) == ["TaskSubmitAck"]  # another client is not held up
    worker = world.worker()
    first = next(iter(world.core.store.records))
    world.result(worker, first)  # one of greedy's finishes...
    _, outbox = world.submit(greedy)  # ...and makes room
    assert "TaskSubmitAck" in kinds_of(outbox) and world.core.store.open_by_client[greedy.id] == 3


def kinds_of(outbox: list[tuple[uuid.UUID, m.Message]]) -> list[str]:
    return [message.WIRE_NAME for _, message in outbox if isinstance(message, m.TaskSubmitAck)]


def test_a_clients_kept_bytes_count_inputs_and_outputs_until_they_are_forgotten() -> None:
    world = quota_world(max_retained_bytes_per_client=1000)
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker()
    big = TaskPayload.Data(function="echo", data=b"x" * 400)
    task_id, _ = world.submit(client, payload=big)
    world.result(worker, task_id, data=b"y" * 500)
    assert world.core.store.bytes_by_client[client.id] == 900
    _, outbox = world.submit(client, payload=big)
    assert "quota: 1000 bytes of inputs and results kept per client (1300" in refused(outbox)
    world.now += 61  # past the retention: forgotten, and no longer counted
    world.core.store.purge(world.now, world.core.policy.retention)
    assert world.core.store.bytes_by_client[client.id] == 0
    _, outbox = world.submit(client, payload=big)
    assert kinds_of(outbox) == ["TaskSubmitAck"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"name": "n" * (MAX_NAME_CHARS + 1)}, "the task's name has 257 characters"),
        ({"tags": tuple(f"t{i}" for i in range(MAX_TAGS + 1))}, "33 tags are too many"),
        ({"tags": ("t" * (MAX_NAME_CHARS + 1),)}, "tag has 257 characters"),
        (
            {"payload": TaskPayload.Data(function="f" * 1000, data=b"")},
            "function name has 1000 characters",
        ),
    ],
)
def test_names_and_tags_are_bounded(changes: dict[str, object], why: str) -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    _, outbox = world.submit(client, **changes)
    assert why in refused(outbox)


def test_a_worker_with_a_huge_name_is_refused_at_the_handshake() -> None:
    hello = node(NodeType.Worker, "w" * 10_000)
    ack, peer = World().core.join(hello, T0)
    assert peer is None and "the node's name has 10000 characters" in (ack.reason or "")


def test_a_task_whose_inputs_cannot_fit_a_frame_fails_at_once_and_the_core_goes_on() -> None:
    world = World()
    client = world.join(node(NodeType.Client, "c"))
    worker = world.worker(slots=2)
    half = ASSIGN_BYTES // 2 + 1
    first, _ = world.submit(client, payload=TaskPayload.Data(function="echo", data=b""))
    second, _ = world.submit(client, payload=TaskPayload.Data(function="echo", data=b""))
    world.result(worker, first, data=b"a" * half)
    world.result(worker, second, data=b"b" * half)
    reduce_id, outbox = world.submit(
        client,
        payload=TaskPayload.Reduce(function="concat", intermediate_results=()),
        dependencies=(first, second),
    )
    assert world.state(reduce_id) == "Failed"
    record = world.core.store.records[reduce_id]
    assert "one frame carries at most" in record.state.error  # type: ignore[attr-defined]
    assert any(isinstance(msg, m.TaskOutcome) for _, msg in outbox)
    small, _ = world.submit(client)  # and the coordinator carries on
    assert world.state(small) == "Scheduled"


def test_the_decoder_gives_back_the_memory_of_a_large_frame() -> None:
    decoder = FrameDecoder()
    large = m.TaskSubmit(
        task=dataclasses.replace(
            word_count_task(), payload=TaskPayload.Data(function="echo", data=bytes(8 << 20))
        ),
        request_id=uuid.uuid4(),
    )
    frame = encode_frame(large)
    decoder.feed(frame + encode_frame(m.ClusterStatusRequest(request_id=uuid.uuid4()))[:5])
    assert decoder.next_message() == large
    assert sys.getsizeof(decoder._buffer) < 1024  # not the 8 MiB it held
    assert decoder.buffered == 5


def test_housekeeping_goes_on_after_a_handler_fails(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vistrit.coordinator.core import HANDLERS, CoordinatorCore

    caplog.set_level(logging.ERROR)
    core = cluster.coordinator.core
    assert core is not None
    calls = {"ticks": 0}
    real_tick = CoordinatorCore.tick

    def counting(self: CoordinatorCore, now: float) -> object:
        calls["ticks"] += 1
        if calls["ticks"] == 2:
            raise RuntimeError("a bug in one tick")
        return real_tick(self, now)

    def broken(self: CoordinatorCore, peer: object, message: object, now: float) -> object:
        raise RuntimeError("a bug in one handler")

    monkeypatch.setattr(CoordinatorCore, "tick", counting)
    monkeypatch.setitem(HANDLERS, m.ClusterStatusRequest, broken)
    conn, answer = join_raw(cluster.coordinator.address, WORKER)
    try:
        assert isinstance(answer, m.HandshakeAck) and answer.accepted
        conn.send(m.ClusterStatusRequest(request_id=uuid.uuid4()))
        assert conn.receive(time.monotonic() + 5) is None  # that connection is dropped...
    finally:
        conn.close()
    wait_until(lambda: "handler failed" in caplog.text, what="the failure logged")
    before = calls["ticks"]
    wait_until(lambda: calls["ticks"] >= before + 3, what="more ticks")  # ...the clock goes on
    assert "timer action failed" in caplog.text  # the bad tick was logged, not fatal
    worker = cluster.add_worker()
    assert cluster.client().submit("uppercase", "still serving").result(10) == "STILL SERVING"
    assert worker.running == 0


def test_policies_refuse_impossible_limits() -> None:
    with pytest.raises(ValueError, match="max_slots"):
        Policy(max_slots=0)
