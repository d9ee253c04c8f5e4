"""Tasks and results written again from the bytes they were decoded from
(:mod:`vistrit.protocol.remembered`): the same bytes as encoding them anew, for every
message that carries one; never for a value made anew, nor for a large one; and used by a
coordinator."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nodes import Cluster
from strategies import messages_of

from vistrit.protocol import decode_frame, encode_frame, remembered
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import V4, first_version
from vistrit.protocol.errors import EncodeError
from vistrit.protocol.examples import all_examples, v2_examples, word_count_task
from vistrit.protocol.remembered import wire_bytes
from vistrit.protocol.schema import StructCodec, WireValue, u32
from vistrit.protocol.types import Task, TaskResult


@pytest.fixture
def remembering() -> Iterator[None]:
    """Keeping bytes on (as a coordinator turns it on); as it was afterwards."""
    was = remembered._enabled
    remembered.enable()
    yield
    remembered.enable(was)


@pytest.fixture
def fresh_encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class names of the values :class:`StructCodec` encodes field by field from now
    on (a message's, and a task's or result's: not every nested struct's)."""
    names: list[str] = []
    encode = StructCodec.encode

    def counted(self: StructCodec, value: object, out: bytearray) -> None:
        names.append(self.cls.__name__)
        encode(self, value, out)

    monkeypatch.setattr(StructCodec, "encode", counted)
    return names


def _task_submit() -> m.TaskSubmit:
    return all_examples()["TaskSubmit"]  # type: ignore[return-value]


@pytest.mark.parametrize("cls", V4.messages, ids=lambda c: c.WIRE_NAME)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_decoded_message_encodes_to_the_very_bytes_it_came_from(
    cls: type[m.Message], data: st.DataObject
) -> None:
    """The decoder is strict, so a value decoded from some bytes writes exactly those bytes
    again: a message that carries a remembered task or result encodes as it did."""
    was = remembered._enabled
    remembered.enable()
    try:
        message = data.draw(messages_of(cls))
        version = first_version(cls)
        frame = encode_frame(message, version)
        decoded = decode_frame(frame).message
        assert encode_frame(decoded, version) == frame
    finally:
        remembered.enable(was)


@pytest.mark.usefixtures("remembering")
def test_a_task_passed_on_is_written_from_its_bytes(fresh_encodes: list[str]) -> None:
    expected = (
        encode_frame(m.TaskAssign(task=_task_submit().task), 4),
        encode_frame(_task_submit(), 1),
    )
    submit = decode_frame(encode_frame(_task_submit(), 4)).message
    assert isinstance(submit, m.TaskSubmit)
    fresh_encodes.clear()
    assign = encode_frame(m.TaskAssign(task=submit.task), 4)
    assert fresh_encodes == ["TaskAssign"]  # the message's own fields, not the task's
    record = encode_frame(submit, 1)  # the leader's journal record
    assert "Task" not in fresh_encodes
    assert (assign, record) == expected


@pytest.mark.usefixtures("remembering")
def test_a_result_passed_on_is_written_from_its_bytes(fresh_encodes: list[str]) -> None:
    report = all_examples()["TaskResult"]  # (the message's name in PROTOCOL-v1.md)
    assert isinstance(report, m.TaskResultMessage)
    result = decode_frame(encode_frame(report, 4)).message.result  # type: ignore[attr-defined]
    outcome = v2_examples()["TaskOutcome"]
    assert isinstance(outcome, m.TaskOutcome)
    state = outcome.state
    again = m.TaskOutcome(task_id=result.task_id, state=state, result=report.result)
    expected = encode_frame(again, 4)
    fresh_encodes.clear()
    frame = encode_frame(m.TaskOutcome(task_id=result.task_id, state=state, result=result), 4)
    assert "TaskResult" not in fresh_encodes
    assert frame == expected


@pytest.mark.usefixtures("remembering")
def test_an_equal_value_made_anew_is_encoded_field_by_field(fresh_encodes: list[str]) -> None:
    submit = decode_frame(encode_frame(_task_submit(), 4)).message
    assert isinstance(submit, m.TaskSubmit)
    twin = dataclasses.replace(submit.task)
    assert twin == submit.task and twin is not submit.task
    fresh_encodes.clear()
    encode_frame(m.TaskAssign(task=twin), 4)
    assert "Task" in fresh_encodes
    changed = dataclasses.replace(submit.task, name="another name")
    frame = encode_frame(m.TaskAssign(task=changed), 4)
    decoded = decode_frame(frame).message
    assert isinstance(decoded, m.TaskAssign) and decoded.task.name == "another name"


@pytest.mark.usefixtures("remembering")
def test_a_decoded_value_of_another_type_is_refused_as_before() -> None:
    """A result where a task belongs is an encoding error, bytes kept or not."""
    report = decode_frame(encode_frame(all_examples()["TaskResult"], 4)).message
    assert isinstance(report, m.TaskResultMessage) and wire_bytes(report.result) is not None
    with pytest.raises(EncodeError, match="Task expected, got TaskResult"):
        encode_frame(m.TaskAssign(task=report.result), 4)  # type: ignore[arg-type]


def test_a_process_that_does_not_pass_values_on_keeps_no_bytes() -> None:
    was = remembered._enabled
    remembered.enable(False)
    try:
        submit = decode_frame(encode_frame(_task_submit(), 4)).message
        assert isinstance(submit, m.TaskSubmit) and wire_bytes(submit.task) is None
    finally:
        remembered.enable(was)


@pytest.mark.usefixtures("remembering")
def test_a_large_value_keeps_no_bytes() -> None:
    big = word_count_task(b"x" * (remembered.MAX_BYTES + 1))
    small = word_count_task(b"x" * 16)
    decoded = decode_frame(encode_frame(m.TaskAssign(task=big), 4)).message
    assert isinstance(decoded, m.TaskAssign) and wire_bytes(decoded.task) is None
    decoded = decode_frame(encode_frame(m.TaskAssign(task=small), 4)).message
    assert isinstance(decoded, m.TaskAssign)
    out = bytearray()
    Task.__wire__.encode(small, out)
    assert wire_bytes(decoded.task) == bytes(out)


@pytest.mark.usefixtures("remembering")
def test_the_bytes_are_no_field_and_a_copy_has_none() -> None:
    submit = decode_frame(encode_frame(_task_submit(), 4)).message
    assert isinstance(submit, m.TaskSubmit)
    task = submit.task
    assert wire_bytes(task) is not None
    assert task == _task_submit().task and hash(task) == hash(_task_submit().task)
    assert repr(task) == repr(_task_submit().task)
    assert "_wire_bytes" not in [f.name for f in dataclasses.fields(task)]
    for made_anew in (dataclasses.replace(task), copy.copy(task), pickle.loads(pickle.dumps(task))):
        assert made_anew == task and wire_bytes(made_anew) is None
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):  # as frozen as a field
        task._wire_bytes = b"other"  # type: ignore[misc]
    assert wire_bytes(task) is not None and wire_bytes(task) != b"other"
    assert issubclass(TaskResult, remembered.RememberedValue)


def test_only_a_struct_with_the_slot_can_be_declared_remembered() -> None:
    class Plain(WireValue):
        size: u32

    with pytest.raises(TypeError, match="RememberedValue"):
        remembered.remembered_struct(Plain)


@pytest.mark.timeout(60)
def test_a_coordinator_passes_tasks_and_results_on_from_their_bytes(
    cluster: Cluster, fresh_encodes: list[str]
) -> None:
    """Over real sockets, in this process: a coordinator turns remembering on, and encodes
    no task and no result of the work itself. The client encodes each task once and the
    worker each result once; before, the coordinator encoded each of both once more."""
    assert remembered._enabled
    cluster.add_worker(slots=1)
    client = cluster.client()
    fresh_encodes.clear()
    futures = [client.submit("echo", b"%d" % n) for n in range(20)]
    assert [f.result(30) for f in futures] == [b"%d" % n for n in range(20)]
    assert fresh_encodes.count("Task") == 20  # the client's submissions, and no more
    assert fresh_encodes.count("TaskResult") == 20  # the worker's results, and no more
