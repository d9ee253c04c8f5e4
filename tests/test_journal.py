"""The journal: what was acknowledged survives a crash; a torn tail is cut off, other damage
refuses to start (or is repaired, keeping every intact record), a lost journal is an error."""

from __future__ import annotations

import dataclasses
import errno
import logging
import random
import uuid
from pathlib import Path

import pytest

from vistrit.coordinator import recovery
from vistrit.coordinator.core import CoordinatorCore
from vistrit.coordinator.journal import Journal, JournalCorrupted, JournalError, TermFile
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


def damage_second_frame(tmp_path: Path, entries: list[m.TaskSubmit]) -> int:
    journal = Journal(tmp_path)
    journal.append(entries)
    journal.close()
    data = bytearray((tmp_path / "journal.vst").read_bytes())
    second_frame = len(encode_frame(entries[0]))
    data[second_frame + 30] ^= 0xFF
    (tmp_path / "journal.vst").write_bytes(bytes(data))
    return second_frame


def test_damage_before_intact_records_refuses_to_start_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    entries = [submit(), submit(), submit()]
    second_frame = damage_second_frame(tmp_path, entries)
    before = (tmp_path / "journal.vst").read_bytes()
    with pytest.raises(JournalCorrupted) as refused:
        read(tmp_path)
    message = str(refused.value)
    assert str(tmp_path / "journal.vst") in message and f"at offset {second_frame}" in message
    assert "before 1 intact record(s)" in message and "--repair" in message
    assert (tmp_path / "journal.vst").read_bytes() == before  # nothing was cut off


def test_repair_keeps_every_intact_record_and_sets_the_damage_aside(tmp_path: Path) -> None:
    entries = [submit(), submit(), submit()]
    second_frame = damage_second_frame(tmp_path, entries)
    damaged = len(encode_frame(entries[1]))
    journal = Journal(tmp_path, repair=True)
    try:
        assert journal.replay() == [entries[0], entries[2]]
    finally:
        journal.close()
    assert read(tmp_path) == [entries[0], entries[2]]  # and the file now starts clean
    [aside] = tmp_path.glob("damaged-*.bin")
    assert len(aside.read_bytes()) == damaged
    assert second_frame > 0


def test_a_torn_last_write_is_cut_off(tmp_path: Path) -> None:
    entries = [submit(), submit()]
    journal = Journal(tmp_path)
    journal.append(entries)
    journal.close()
    path = tmp_path / "journal.vst"
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the crash came mid-write
    assert read(tmp_path) == entries[:1]
    assert path.stat().st_size == len(encode_frame(entries[0]))


def test_a_lost_journal_is_an_error_never_a_fresh_start(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([submit()])
    journal.close()
    (tmp_path / "journal.vst").unlink()
    with pytest.raises(JournalError, match=r"journal.vst is missing, but .* held a journal"):
        Journal(tmp_path)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(JournalError, match=r"cannot use .*file/data for the journal"):
        Journal(not_a_folder / "data")


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


def test_orphans_finish_again_what_a_replaced_copy_finished_and_its_new_copy_has_not() -> None:
    """A copy replaced by a snapshot keeps the tasks it finished that the snapshot lacks or
    holds unfinished; a coordinator that leads finishes them again in its copy, with their
    outcomes, and returns their records to journal. Nothing unfinished is kept, nothing the
    new copy finished is touched, and a task whose retention ended is not brought back."""
    lacking, unfinished, both, running, expired = (submit() for _ in range(5))
    old, new = core(), core()
    for entry in (lacking, unfinished, both, running):
        recovery.replay(old, entry, T0)
    recovery.replay(old, expired, T0 - 7200)
    for entry in (lacking, unfinished, both, expired):
        recovery.replay(old, done(entry), T0 if entry is not expired else T0 - 7200)
    for entry in (unfinished, both, running):
        recovery.replay(new, entry, T0)
    theirs = dataclasses.replace(RESULT, task_id=both.task.id, data=b"theirs")
    recovery.replay(new, dataclasses.replace(done(both), result=theirs), T0)
    assert new.scheduler.ready_count == 2

    orphans = recovery.Orphans(retention=3600)
    assert orphans.keep(old.store, new.store, T0 + 10) == 2  # lacking, unfinished
    orphans.tasks[expired.task.id] = (T0 - 7200, [expired, done(expired)])  # kept long ago
    entries = orphans.adopt(new, T0 + 10)
    assert orphans.tasks == {}
    assert [
        (type(e).__name__, e.task.id if isinstance(e, m.TaskSubmit) else e.task_id) for e in entries
    ] == [
        ("TaskSubmit", lacking.task.id),
        ("TaskOutcome", lacking.task.id),
        ("TaskSubmit", unfinished.task.id),
        ("TaskOutcome", unfinished.task.id),
    ]
    for entry in (lacking, unfinished):
        record = new.store.known(entry.task.id)
        assert record.status == "Completed" and record.result == done(entry).result
    assert new.scheduler.ready_count == 1  # "unfinished" left the queue; "running" waits
    assert new.store.known(both.task.id).result.data == b"theirs"  # its own outcome stands
    assert new.store.known(running.task.id).status == "Pending"  # unfinished in both: not kept
    assert new.store.get(expired.task.id) is None  # its retention had ended

    orphans.keep(old.store, core().store, T0 + 10)  # a copy that has none of them finished
    assert set(orphans.tasks) == {lacking.task.id, unfinished.task.id, both.task.id}
    orphans.keep(core().store, new.store, T0 + 20)  # this one has: they are not kept longer
    assert orphans.tasks == {}


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
    recovery.restore(restored, [finished, pending, waiting, failed, doomed], T0)
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
    recovery.restore(live, entries, T0)
    journal = Journal(tmp_path)
    journal.append(entries * 3)  # plenty of dead weight
    journal.compact(live.live_journal())
    assert journal.frames == 8
    journal.close()
    again = core()
    recovery.restore(again, read(tmp_path), T0)
    assert {i: r.status for i, r in again.store.records.items()} == {
        i: r.status for i, r in live.store.records.items()
    }


def test_a_snapshot_sets_the_replaced_journal_aside(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    entries = [submit(), submit()]
    journal.append(entries)
    kept = journal.set_aside()
    journal.append([submit()])
    journal.close()
    assert kept is not None and read_frames(kept) == entries
    assert len(read(tmp_path)) == 1
    for _ in range(4):  # only the newest few are kept
        journal = Journal(tmp_path)
        journal.append([submit()])
        journal.set_aside()
        journal.close()
    assert len(list(tmp_path.glob("replaced-*.vst"))) == 3


def read_frames(path: Path) -> list[m.Message]:
    from vistrit.coordinator.journal import scan
    from vistrit.protocol import decode_frame

    return [decode_frame(frame).message for frame in scan(path.read_bytes()).frames]


def test_a_term_past_the_limit_in_the_term_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "term").write_text(f"{2**64 - 1}\n")
    with pytest.raises(ValueError, match="not a term"):
        TermFile(tmp_path).load()


@pytest.mark.parametrize(
    ("method", "error", "says"),
    [
        ("append_frames", OSError(errno.ENOSPC, "No space left on device"), "write"),
        # The group commit's fsync, made on its own thread, off the lock.
        ("flush_to_disk", OSError(errno.EIO, "Input/output error"), "fsync"),
    ],
)
def test_a_journal_that_cannot_be_written_or_synced_stops_the_coordinator_saying_why(
    method: str, error: OSError, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vistrit.client import CoordinatorUnavailable, VistritClient
    from vistrit.coordinator import Coordinator

    coordinator = Coordinator(("127.0.0.1", 0), data_dir=tmp_path)
    coordinator.start()
    journal = coordinator.journal
    assert journal is not None and coordinator.syncer is not None

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(journal, method, broken)
    host, port = coordinator.address
    with VistritClient(f"{host}:{port}", request_timeout=5, reconnect_timeout=0) as client:
        future = client.submit("uppercase", "never acknowledged")
        assert coordinator.stopped.wait(10)
        with pytest.raises(CoordinatorUnavailable):  # never acknowledged: it cannot last
            future.result(10)
    assert coordinator.failure is not None
    assert f"cannot {says} the journal {tmp_path / 'journal.vst'}" in coordinator.failure
    assert str(error.strerror) in coordinator.failure
    written = b"never acknowledged" in (tmp_path / "journal.vst").read_bytes()
    assert written == (method == "flush_to_disk")  # written, and what waited never sent


def test_the_cli_says_an_unusable_data_dir_is_not_a_port_problem(tmp_path: Path) -> None:
    import subprocess
    import sys

    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    command = [sys.executable, "-m", "vistrit", "coordinator", "--bind", "127.0.0.1:0"]
    run = subprocess.run(
        [*command, "--data-dir", str(a_file / "data")], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 1
    assert f"error: cannot use {a_file / 'data'} for the journal" in run.stderr
    assert "cannot listen" not in run.stderr


def test_a_python_call_survives_a_restart_on_its_journal(tmp_path: Path) -> None:
    """A Call task and its typed arguments are journaled like any task: a coordinator
    restarted on its data dir still has it, and a worker that offers it runs it."""
    import callables
    from nodes import wait_until

    from vistrit.client import VistritClient
    from vistrit.coordinator import Coordinator
    from vistrit.worker import Worker

    first = Coordinator(("127.0.0.1", 0), data_dir=tmp_path)
    first.start()
    try:
        with VistritClient("{}:{}".format(*first.address)) as client:
            task_id = client.submit(callables.echo, (1, 2), key=b"\x00").task_id
            assert client.status(task_id).state == "Pending"  # no worker yet
    finally:
        first.stop()
    second = Coordinator(("127.0.0.1", 0), data_dir=tmp_path)
    second.start()
    worker = Worker(second.address, modules=["callables"], heartbeat_interval=0.2)
    worker.start()
    try:
        with VistritClient("{}:{}".format(*second.address)) as client:
            info = client.wait(task_id, timeout=30)
            assert info.state == "Completed" and info.value == (((1, 2),), {"key": b"\x00"})
            wait_until(lambda: worker.running == 0)
    finally:
        worker.stop()
        second.stop()
