"""The fault-tolerance pieces on their own: backoff, the coordinator's deadlines on a fake
clock, the repeating timer, the follower's copy, the saved term, and pipelined replies."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from vistrit.coordinator.journal import TermFile
from vistrit.defaults import Policy
from vistrit.logic.backoff import Backoff
from vistrit.logic.liveness import Liveness
from vistrit.logic.registry import Registry
from vistrit.logic.replication import FollowerCopy, Replicator, snapshot_parts
from vistrit.protocol import messages as m
from vistrit.protocol.types import NodeState, NodeType, SocketAddr, introduce
from vistrit.replies import Replies
from vistrit.timers import RepeatingTimer

pytestmark = pytest.mark.timeout(30)

T0 = 1_000.0

# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.pause(n, None) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_stays_between_half_and_all_of_the_pause() -> None:
    backoff = Backoff(1.0, 8.0)
    assert backoff.pause(3, lambda: 0.0) == 2.0
    assert backoff.pause(3, lambda: 0.999) == pytest.approx(3.998)


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_refuses_a_bad_range(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)


# -- the coordinator's deadlines ------------------------------------------------------------


def worker_entry(registry: Registry, name: str, now: float, heartbeat: bool = True) -> uuid.UUID:
    info = introduce(uuid.uuid4(), NodeType.Worker, SocketAddr("127.0.0.1", 1), name, 0)
    entry = registry.add(info, now)
    if heartbeat:
        registry.heartbeat(entry.id, NodeState.Ready, now)
    return entry.id


def test_a_worker_is_silent_only_after_the_heartbeat_timeout() -> None:
    liveness = Liveness(Policy(heartbeat_timeout=5))
    registry = Registry()
    quiet = worker_entry(registry, "quiet", T0)
    chatty = worker_entry(registry, "chatty", T0)
    never = worker_entry(registry, "reference-cli", T0, heartbeat=False)
    assert liveness.silent(registry.workers.values(), T0 + 5) == []
    registry.heartbeat(chatty, NodeState.Ready, T0 + 4)
    assert liveness.silent(registry.workers.values(), T0 + 5.1) == [quiet]
    assert never not in liveness.silent(registry.workers.values(), T0 + 100)


def test_attempt_deadlines_come_due_in_order_and_only_once() -> None:
    liveness = Liveness()
    a, b = uuid.uuid4(), uuid.uuid4()
    assert liveness.attempt_started(a, 1, 0, T0) is None  # no timeout: no deadline
    assert liveness.attempt_started(b, 2, 10, T0) == T0 + 10
    assert liveness.attempt_started(a, 1, 5, T0 + 1) == T0 + 6
    assert liveness.overdue_attempts(T0 + 5.9) == []
    assert liveness.overdue_attempts(T0 + 10) == [(a, T0 + 6), (b, T0 + 10)]
    assert liveness.overdue_attempts(T0 + 20) == []


def test_an_assignment_must_be_acknowledged_within_the_heartbeat_timeout() -> None:
    liveness = Liveness(Policy(heartbeat_timeout=2))
    task, worker = uuid.uuid4(), uuid.uuid4()
    liveness.assignment_sent(task, worker, T0)
    assert liveness.unacknowledged(T0 + 1.9) == []
    assert liveness.unacknowledged(T0 + 2) == [(task, worker)]
    done, again, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    liveness.assignment_sent(done, worker, T0 + 3)
    liveness.assignment_sent(again, worker, T0 + 3)
    liveness.assignment_sent(other, worker, T0 + 4)
    liveness.settled(done)  # it finished: nothing more is awaited, nothing is kept
    liveness.assignment_sent(again, other, T0 + 5)  # assigned anew: its new deadline counts
    assert liveness.unacknowledged(T0 + 6) == [(other, worker)]
    assert liveness.unacknowledged(T0 + 7) == [(again, other)]
    assert not liveness._assignments


def test_a_retry_is_released_after_its_backoff() -> None:
    liveness = Liveness(Policy(retry_backoff=0.5, retry_backoff_max=30), random=lambda: 0.0)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert liveness.retry_later(first, 1, 3, T0) == 1.0  # 0.5 * 2**2, jittered down by half
    assert liveness.retry_later(second, 2, 1, T0) == 0.25
    assert liveness.due_retries(T0 + 0.2) == []
    assert liveness.due_retries(T0 + 0.25) == [second]
    assert liveness.due_retries(T0 + 1.0) == [first]


def test_the_poison_rule_counts_lost_workers() -> None:
    liveness = Liveness(Policy(max_lost_workers=3))
    assert not liveness.is_poison(3)
    assert liveness.is_poison(4)


# -- the repeating timer --------------------------------------------------------------------


def test_a_repeating_timer_repeats_until_stopped_and_survives_its_action_failing() -> None:
    calls: list[int] = []
    third = threading.Event()

    def action() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("a bug in one tick")

    timer = RepeatingTimer(0.01, action, name="test timer")
    timer.start()
    assert third.wait(10), "the timer stopped after its action raised"
    timer.stop()
    seen = len(calls)
    stopped = threading.Event()
    assert not stopped.wait(0.1)  # a bounded wait for runs that should not happen
    assert len(calls) <= seen + 1  # at most a run already under way
    assert not timer.running


def test_a_repeating_timer_can_be_stopped_from_its_own_action() -> None:
    ran = threading.Event()
    timer: RepeatingTimer

    def action() -> None:
        timer.stop()
        ran.set()

    timer = RepeatingTimer(0.01, action, name="self-stopping")
    timer.start()
    assert ran.wait(10)
    assert not timer.running


def test_a_timer_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        RepeatingTimer(0, lambda: None, name="never")


# -- replication: the follower's copy, snapshots, handing over ------------------------------


def test_a_follower_applies_only_records_that_continue_its_stream() -> None:
    copy = FollowerCopy()
    assert not copy.continues(1, 3, 1)  # no stream yet: a snapshot comes first
    assert copy.snapshot_part(0, (b"a",))
    assert copy.stream is None and copy.pending == [b"a"]  # not whole until the last part
    assert copy.snapshot_part(1, (b"b", b"c"))
    assert copy.snapshot_complete(1, 3, 10) == [b"a", b"b", b"c"]
    assert copy.stream == (1, 3) and copy.applied == 10 and copy.pending == []
    assert copy.continues(1, 3, 11)
    assert not copy.continues(1, 3, 12)  # a gap
    assert not copy.continues(2, 3, 11)  # another term
    copy.applied_records(2)
    assert copy.continues(1, 3, 13)


def test_a_snapshot_part_out_of_order_breaks_the_snapshot_and_keeps_the_copy() -> None:
    copy = FollowerCopy(stream=(1, 3), applied=7)
    assert copy.snapshot_part(0, (b"a",))
    assert not copy.snapshot_part(2, (b"c",))  # part 1 went missing
    assert copy.pending == [] and not copy.snapshot_part(1, (b"b",))
    assert copy.applied == 7  # what the copy held is untouched
    assert copy.snapshot_part(0, (b"x",))  # a new snapshot starts afresh


def test_snapshot_parts_stay_near_their_size_and_keep_order() -> None:
    frames = [bytes([n]) * 40 for n in range(10)]
    parts = snapshot_parts(frames, 100)
    assert [frame for part in parts for frame in part] == frames
    assert all(sum(map(len, part)) <= 100 for part in parts)
    assert snapshot_parts([], 100) == [[]]
    assert snapshot_parts([b"x" * 500], 100) == [[b"x" * 500]]  # too large: a part alone


def test_the_leader_waits_for_a_snapshot_before_counting_refusals_or_handing_over() -> None:
    replicator: Replicator[str] = Replicator(timeout=1.0)
    replicator.record(5, T0)
    replicator.join(7, T0)
    assert not replicator.snapshot_stale(7, T0 + 0.5)  # the snapshot is on its way
    assert not replicator.holds_everything(7)
    assert replicator.snapshot_stale(7, T0 + 1.5)
    replicator.acked(7, 5)
    assert replicator.holds_everything(7)
    assert replicator.snapshot_stale(7, T0 + 1.6)  # acknowledged: a refusal now counts
    replicator.record(1, T0 + 2)
    assert not replicator.holds_everything(7)  # record 6 is not there yet


# -- the saved term -------------------------------------------------------------------------


def test_a_term_file_keeps_the_newest_term_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    terms = TermFile(tmp_path)
    assert terms.load() == 0
    terms.save(7)
    assert TermFile(tmp_path).load() == 7
    (tmp_path / "term").write_text("seven\n")
    with pytest.raises(ValueError, match="not a term"):
        TermFile(tmp_path).load()


# -- pipelined replies ----------------------------------------------------------------------


def test_replies_are_matched_by_request_and_by_task_and_fail_together() -> None:
    replies = Replies()
    request, task = uuid.uuid4(), uuid.uuid4()
    status = replies.expect(request)
    queries = [replies.expect_about(task, "query") for _ in range(2)]
    cancel = replies.expect_about(task, "cancel")
    answer = m.ClusterStatusRequest(request_id=request)
    assert replies.answer(request, answer) and status.result(0) is answer
    assert not replies.answer(request, answer)  # answered once
    found = m.TaskQueryResponse(task_id=task, found=False, task=None, result=None)
    replies.answer_about(task, "query", found)
    assert [q.result(0) for q in queries] == [found, found]
    assert not cancel.done()
    replies.fail(ConnectionError("lost"))
    with pytest.raises(ConnectionError, match="lost"):
        cancel.result(0)
