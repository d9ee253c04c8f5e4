"""The journal: what was acknowledged survives a crash; a torn tail is cut off, never fatal."""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from pathlib import Path

import pytest

from vistrit.coordinator.core import CoordinatorCore
from vistrit.coordinator.journal import Journal
from vistrit.protocol import encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.examples import COORDINATOR, RESULT, word_count_task
from vistrit.protocol.types import TaskPayload, TaskState

T0 = 1_000_000.0


def submit(**changes: object) -> m.TaskSubmit:
    task = dataclasses.replace(word_count_task(), id=uuid.uuid4(), **changes)  # type: ignore[arg-type]
    return m.TaskSubmit(task=task, request_id=uuid.uuid4())


def done(entry: m.TaskSubmit) -> m.TaskOutcome:
    state = TaskState.Completed(worker_id=RESULT.worker_id, completed_at=1, duration_ms=1)
    return m.TaskOutcome(
        task_id=entry.task.id,
        state=state,
        result=dataclasses.replace(RESULT, task_id=entry.task.id),
    )


def read(directory: Path) -> list[m.Message]:
    journal = Journal(directory)
    try:
        return journal.replay()
    finally:
        journal.close()


def test_frames_written_are_read_back_in_order(tmp_path: Path) -> None:
    first, second = submit(), submit()
    journal = Journal(tmp_path)
    journal.append([first, second])
    journal.append([done(first)])
    journal.close()
    assert read(tmp_path) == [first, second, done(first)]


@pytest.mark.parametrize("cut", [1, 13, 40])
def test_a_torn_tail_is_cut_off_with_a_warning(
    tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    kept = [submit(), submit()]
    journal = Journal(tmp_path)
    journal.append(kept)
    journal.close()
    whole = encode_frame(submit())
    with open(tmp_path / "journal.vst", "ab") as file:
        file.write(whole[:cut])  # the crash came in the middle of this write
    with caplog.at_level(logging.WARNING):
        journal = Journal(tmp_path)
        assert journal.replay() == kept
    assert f"cutting off {cut} byte(s)" in caplog.text
    journal.append([done(kept[0])])  # and it carries on from the good end
    journal.close()
    assert read(tmp_path) == [*kept, done(kept[0])]


def test_a_corrupt_frame_and_everything_after_it_are_cut_off(tmp_path: Path) -> None:
    entries = [submit(), submit(), submit()]
    journal = Journal(tmp_path)
    journal.append(entries)
    journal.close()
    data = bytearray((tmp_path / "journal.vst").read_bytes())
    second_frame = len(encode_frame(entries[0]))
    data[second_frame + 30] ^= 0xFF
    (tmp_path / "journal.vst").write_bytes(bytes(data))
    assert read(tmp_path) == entries[:1]
    assert (tmp_path / "journal.vst").stat().st_size == second_frame


def test_fsync_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="always, batch, never"):
        Journal(tmp_path, fsync="sometimes")
    for mode in ("always", "batch", "never"):
        journal = Journal(tmp_path / mode, fsync=mode)
        journal.append([submit()])
        journal.sync()
        journal.close()
        assert len(read(tmp_path / mode)) == 1


def core() -> CoordinatorCore:
    return CoordinatorCore(COORDINATOR, started_at=T0, rng=random.Random(1))


def test_restore_keeps_outcomes_and_requeues_the_rest(tmp_path: Path) -> None:
    finished, pending = submit(), submit()
    waiting = submit(dependencies=(pending.task.id,))
    doomed = submit(dependencies=(finished.task.id,))
    failed = m.TaskOutcome(
        task_id=finished.task.id,
        state=TaskState.Failed(worker_id=None, error="boom", failed_at=1, retries=0),
        result=None,
    )
    restored = core()
    restored.restore([finished, pending, waiting, failed, doomed], T0)
    records = restored.store.records
    assert records[finished.task.id].status == "Failed"
    assert records[pending.task.id].status == "Pending" and restored.scheduler.ready_count == 1
    assert (
        records[waiting.task.id].status == "Pending"
        and waiting.task.id in restored.scheduler.waiting
    )
    assert records[doomed.task.id].status == "Failed"  # its dependency failed before the crash
    assert [type(e).__name__ for e in restored.take_journal()] == ["TaskOutcome"]  # doomed's


def test_compaction_keeps_exactly_what_is_remembered(tmp_path: Path) -> None:
    live = core()
    entries: list[m.Message] = []
    for index in range(5):
        entry = submit(payload=TaskPayload.Compute(expression=str(index)))
        entries.append(entry)
        if index < 3:
            entries.append(done(entry))
    live.restore(entries, T0)
    journal = Journal(tmp_path)
    journal.append(entries * 3)  # plenty of dead weight
    journal.compact(live.live_journal())
    assert journal.frames == 8
    journal.close()
    again = core()
    again.restore(read(tmp_path), T0)
    assert {i: r.status for i, r in again.store.records.items()} == {
        i: r.status for i, r in live.store.records.items()
    }
