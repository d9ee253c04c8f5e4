"""Group commit (``vistrit/coordinator/syncing.py``): with ``--fsync always`` the journal's
fsync is made off the coordinator's lock, by a thread of its own; what depends on the
records waits for it, an assignment of a task already on disk does not."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import Cluster, wait_until

from vistrit.coordinator import Coordinator
from vistrit.coordinator.core import Outbox
from vistrit.coordinator.journal import Journal
from vistrit.coordinator.waiting import Answers
from vistrit.logic.replication import Replicator
from vistrit.logic.store import TaskStore
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import Task

pytestmark = pytest.mark.timeout(60)

CLIENT, WORKER = uuid.UUID(int=1), uuid.UUID(int=2)
FOLLOWER = 2


def submitted(store: TaskStore) -> Task:
    task = dataclasses.replace(word_count_task(), id=uuid.uuid4())
    store.add(task, 0.0, CLIENT)
    return task


def ack(task: Task) -> m.TaskSubmitAck:
    return m.TaskSubmitAck(request_id=task.id, accepted=True, task_id=task.id, reason=None)


def commit(answers: Answers, store: TaskStore, outbox: Outbox, records: int) -> list[Outbox]:
    """A batch written to the journal (*records* of them), as a coordinator alone does."""
    if records:
        answers.replicator.record(records, 0.0)
    return answers.commit(outbox, store, bool(records))


# -- what waits, without sockets ----------------------------------------------------------------


def test_alone_an_acknowledgement_waits_for_the_fsync_of_its_record() -> None:
    store, answers = TaskStore(), Answers(Replicator(timeout=0.0, disk=True))
    task = submitted(store)
    assert commit(answers, store, [(CLIENT, ack(task))], records=1) == []
    assert answers.stored(answers.replicator.index) == [[(CLIENT, ack(task))]]


def test_alone_an_assignment_of_a_task_on_disk_does_not_wait_for_the_fsync() -> None:
    store, answers = TaskStore(), Answers(Replicator(timeout=0.0, disk=True))
    first, second = submitted(store), submitted(store)
    commit(answers, store, [(CLIENT, ack(first)), (CLIENT, ack(second))], records=2)
    answers.stored(answers.replicator.index)  # both submissions are on disk
    outcome = m.TaskOutcome(task_id=first.id, state=first.state, result=None)
    assign = m.TaskAssign(task=second)
    # The first task's result: its outcome is this batch's record; the next assignment
    # depends on nothing unsynced, and goes at once.
    assert commit(answers, store, [(CLIENT, outcome), (WORKER, assign)], records=1) == [
        [(WORKER, assign)]
    ]
    assert answers.stored(answers.replicator.index) == [[(CLIENT, outcome)]]


def test_alone_an_assignment_of_a_task_not_yet_on_disk_waits() -> None:
    store, answers = TaskStore(), Answers(Replicator(timeout=0.0, disk=True))
    task = submitted(store)
    outbox: Outbox = [(CLIENT, ack(task)), (WORKER, m.TaskAssign(task=task))]
    assert commit(answers, store, outbox, records=1) == []
    assert answers.stored(answers.replicator.index - 1) == []  # an older fsync: not enough
    assert answers.stored(answers.replicator.index) == [outbox]


def test_a_leader_waits_for_its_disk_and_its_follower_both() -> None:
    store = TaskStore()
    replicator: Replicator[Outbox] = Replicator(timeout=1.0, disk=True)
    replicator.join(FOLLOWER, 0.0)
    replicator.acked(FOLLOWER, 0)  # it holds the (empty) snapshot: waited for
    answers = Answers(replicator)
    task = submitted(store)
    replicator.outgoing([b"record"], 0.0)
    assert answers.commit([(CLIENT, ack(task))], store, True) == []
    assert answers.released(replicator.acked(FOLLOWER, replicator.index)) == []  # disk: no
    assert answers.stored(replicator.index) == [[(CLIENT, ack(task))]]
    # The other way round: on disk first, then on the follower's.
    other = submitted(store)
    replicator.outgoing([b"record"], 0.0)
    assert answers.commit([(CLIENT, ack(other))], store, True) == []
    assert answers.stored(replicator.index) == []
    assert answers.released(replicator.acked(FOLLOWER, replicator.index)) == [
        [(CLIENT, ack(other))]
    ]


# -- a real coordinator, its fsync held back ----------------------------------------------------


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[Cluster]:
    coordinator = Coordinator(("127.0.0.1", 0), data_dir=tmp_path, fsync="always")
    coordinator.start()
    cluster = Cluster(coordinator)
    try:
        yield cluster
    finally:
        cluster.stop()


class HeldFsync:
    """The journal's fsync, held until the test lets it go."""

    def __init__(self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self._real = journal.flush_to_disk
        monkeypatch.setattr(journal, "flush_to_disk", self._flush)

    def __enter__(self) -> HeldFsync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.go.set()  # even when the test failed: the syncer's thread must end

    def _flush(self) -> None:
        self.started.set()
        assert self.go.wait(30)
        self._real()


def test_the_fsync_is_made_off_the_lock_and_the_acknowledgement_waits_for_it(
    durable: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = durable.coordinator
    assert coordinator.journal is not None and coordinator.syncer is not None
    client = durable.client()
    with HeldFsync(coordinator.journal, monkeypatch) as fsync:
        future = client.submit("word_count", "a b c")
        assert fsync.started.wait(10)
        # The fsync is under way: the lock is free for everything else...
        assert coordinator.lock.acquire(timeout=5)
        coordinator.lock.release()
        # ...but the task is not acknowledged before it is on disk.
        assert not future.accepted.wait(0.2)
        assert b"a b c" in coordinator.journal.path.read_bytes()  # written, not yet synced
        fsync.go.set()
        assert future.accepted.wait(10)


def test_a_worker_is_not_held_by_the_fsync_of_its_last_result(
    durable: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = durable.coordinator
    assert coordinator.journal is not None
    client = durable.client()
    first, second = client.submit("word_count", "a b"), client.submit("word_count", "c d e")
    assert first.accepted.wait(10) and second.accepted.wait(10)  # both submissions on disk
    sent: list[m.Message] = []
    coordinator.frame_tap = lambda way, _, messages: sent.extend(messages if way == "out" else ())
    with HeldFsync(coordinator.journal, monkeypatch) as fsync:
        durable.add_worker(slots=1)
        # The first result's outcome is a record, its fsync held back; the second task's
        # assignment depends on nothing unsynced: it goes, and the second task runs too.
        wait_until(
            lambda: any(type(x) is m.TaskAssign and x.task.id == second.task_id for x in sent),
            what="the second task to be assigned",
        )
        assert fsync.started.wait(10)
        assert not first.done()  # its outcome waits for the disk
        fsync.go.set()
        assert client.gather([first, second], 10) == ["2", "3"]
