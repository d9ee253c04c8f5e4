"""A leader holds each answer until the followers have the records it depends on; an
assignment depends only on its task's submission, and never overtakes what its worker
was sent before."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from vistrit.coordinator.core import Outbox
from vistrit.coordinator.waiting import Answers
from vistrit.logic.replication import Replicator
from vistrit.logic.store import TaskStore
from vistrit.protocol import messages as m
from vistrit.protocol.examples import word_count_task
from vistrit.protocol.types import Task

pytestmark = pytest.mark.timeout(30)

CLIENT, WORKER, OTHER = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
FOLLOWER = 2


class Leader:
    """A store, a replicator with one follower it waits for, and the answers."""

    def __init__(self) -> None:
        self.store = TaskStore()
        self.replicator: Replicator[Outbox] = Replicator(timeout=1.0)
        self.replicator.join(FOLLOWER, 0.0)
        self.replicator.acked(FOLLOWER, 0)  # it holds the (empty) snapshot: waited for
        self.answers = Answers(self.replicator)

    def submitted(self) -> Task:
        """A task the core has just recorded (its submission is a record of this batch)."""
        task = dataclasses.replace(word_count_task(), id=uuid.uuid4())
        self.store.add(task, 0.0, CLIENT)
        return task

    def commit(self, outbox: Outbox, records: int = 1) -> list[Outbox]:
        """A batch: its records are numbered (and sent), and its outbox is committed."""
        if records:
            self.replicator.outgoing([b"record"] * records, 0.0)
        return self.answers.commit(outbox, self.store, bool(records))

    def acked(self) -> list[Outbox]:
        """The follower holds every record numbered so far."""
        return self.answers.released(self.replicator.acked(FOLLOWER, self.replicator.index))


def assign(task: Task) -> m.TaskAssign:
    return m.TaskAssign(task=task)


def ack(task: Task) -> m.TaskSubmitAck:
    return m.TaskSubmitAck(request_id=task.id, accepted=True, task_id=task.id, reason=None)


def test_an_answer_that_depends_on_a_record_waits_for_the_follower() -> None:
    leader = Leader()
    task = leader.submitted()
    outbox: Outbox = [(CLIENT, ack(task)), (WORKER, assign(task))]
    assert leader.commit(outbox) == []  # its submission is not replicated: both wait
    assert leader.acked() == [outbox]


def test_an_assignment_of_a_replicated_task_does_not_wait_for_the_batch_records() -> None:
    leader = Leader()
    first, second = leader.submitted(), leader.submitted()
    leader.commit([(CLIENT, ack(first)), (CLIENT, ack(second))])
    leader.acked()
    # A result: its outcome is this batch's record; the next task's assignment is not.
    outcome = m.TaskOutcome(task_id=first.id, state=first.state, result=None)
    released = leader.commit([(CLIENT, outcome), (WORKER, assign(second))])
    assert released == [[(WORKER, assign(second))]]
    assert leader.acked() == [[(CLIENT, outcome)]]


def test_an_assignment_never_overtakes_what_its_worker_waits_for() -> None:
    leader = Leader()
    old, new = leader.submitted(), leader.submitted()
    leader.commit([(CLIENT, ack(old)), (CLIENT, ack(new))])
    leader.acked()
    cancel = m.TaskCancel(task_id=old.id, requested_by=CLIENT, reason=None)
    assert leader.commit([(WORKER, cancel)]) == []  # decided with a record: it waits
    assert leader.commit([(WORKER, assign(new))], records=0) == []  # behind it
    assert leader.commit([(OTHER, assign(old))], records=0) == [[(OTHER, assign(old))]]
    assert leader.acked() == [[(WORKER, cancel)], [(WORKER, assign(new))]]
    assert leader.commit([(WORKER, assign(old))], records=0) == [[(WORKER, assign(old))]]


def test_an_assignment_after_a_waiting_message_in_the_same_batch_waits_too() -> None:
    leader = Leader()
    task = leader.submitted()
    leader.commit([(CLIENT, ack(task))])
    leader.acked()
    cancel = m.TaskCancel(task_id=task.id, requested_by=CLIENT, reason=None)
    outbox: Outbox = [(WORKER, cancel), (WORKER, assign(task))]
    assert leader.commit(outbox) == []
    assert leader.acked() == [outbox]


def test_a_task_of_a_batch_still_on_its_way_is_not_assigned_before_it_arrives() -> None:
    leader = Leader()
    early = leader.submitted()
    leader.commit([(CLIENT, ack(early))])  # on its way to the follower
    late = leader.submitted()
    leader.commit([(CLIENT, ack(late))])  # numbered, sent with the next
    assert leader.commit([(WORKER, assign(early))], records=0) == []
    assert leader.commit([(OTHER, assign(late))], records=0) == []
    assert len(leader.acked()) == 4


def test_a_follower_no_longer_waited_for_holds_nothing_back() -> None:
    leader = Leader()
    task = leader.submitted()
    assert leader.commit([(CLIENT, ack(task))]) == []
    released, dropped = leader.replicator.tick(5.0, paused=False)  # silent past its timeout
    assert dropped == [FOLLOWER] and leader.answers.released(released) == [[(CLIENT, ack(task))]]
    assert leader.commit([(WORKER, assign(task))]) == [[(WORKER, assign(task))]]
