"""A real cluster in this process: coordinator, workers and clients over real sockets on
127.0.0.1, checking real outcomes. (tests/test_processes.py does the same with separate
processes and the CLI.)"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import uuid

import pytest
from nodes import ORDER, Cluster, gate, heartbeat, join_raw, wait_until

from vistrit.client import TaskError, TaskNotFound, TaskRejected
from vistrit.defaults import QUICK_RUNS
from vistrit.protocol import messages as m
from vistrit.protocol.types import NodeState, TaskState

pytestmark = pytest.mark.timeout(60)


def running(cluster: Cluster, future: concurrent.futures.Future[object]) -> bool:
    return cluster.clients[0].status(future.task_id).state == "Running"  # type: ignore[attr-defined]


# -- every kind of task -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "data", "output"),
    [
        ("echo", "hello world", "hello world"),
        ("uppercase", "hello", "HELLO"),
        ("lowercase", "HeLLo", "hello"),
        ("reverse", "abc", "cba"),
        ("word_count", "to be or not to be", "6"),
        ("line_count", "a\nb\nc", "3"),
        ("sha256", "abc", hashlib.sha256(b"abc").hexdigest()),
    ],
)
def test_built_in_data_functions(cluster: Cluster, function: str, data: str, output: str) -> None:
    cluster.add_worker(slots=2)
    assert cluster.client().submit(function, data).result(10) == output


def test_bytes_in_bytes_out(cluster: Cluster) -> None:
    cluster.add_worker()
    payload = bytes(range(256)) * 64
    assert cluster.client().submit("echo", payload).result(10) == payload


def test_an_assignment_goes_out_before_the_acknowledgement_and_each_peer_keeps_its_order(
    cluster: Cluster,
) -> None:
    """The worker waits for its task, the client for the outcome, not for the ack: the
    assignment goes first. The client still gets its ack before the outcome."""
    worker = cluster.add_worker()
    client = cluster.client()
    sent: list[tuple[uuid.UUID, type]] = []
    cluster.coordinator.frame_tap = lambda way, node, messages: sent.extend(
        (node, type(message)) for message in messages if way == "out"
    )
    for n in range(3):
        assert client.submit("echo", f"x{n}").result(10) == f"x{n}"
    wanted = (m.TaskAssign, m.TaskSubmitAck, m.TaskOutcome)

    def kinds() -> list[tuple[uuid.UUID, type]]:
        return [(node, kind) for node, kind in sent if kind in wanted]

    wait_until(lambda: len(kinds()) >= 9)  # the tap runs just after the last outcome's send
    one_task = [(worker.id, m.TaskAssign), (client.id, m.TaskSubmitAck), (client.id, m.TaskOutcome)]
    assert kinds() == one_task * 3


def test_compute_map_and_reduce(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    assert client.submit_compute("2+3*4").result(10) == "14"
    assert client.submit_compute("(1 + 2) ** 10 / 4").result(10) == "14762.25"
    assert client.submit_map("uppercase", ["ab", "cd"]).result(10) == "AB\nCD"
    for function, inputs, output in [
        ("sum", ["1", "2", "3.5"], "6.5"),
        ("count", ["x", "y"], "2"),
        ("concat", ["ab", "cd"], "abcd"),
        ("max", ["3", "10", "2"], "10"),
        ("min", ["3", "10", "2"], "2"),
    ]:
        assert client.submit_reduce(function, inputs).result(10) == output


def test_map_reduce_feeds_the_reduce_with_the_map_results(cluster: Cluster) -> None:
    cluster.add_worker(slots=2)
    cluster.add_worker(slots=1)
    client = cluster.client()
    chunks = [" ".join(["word"] * n) for n in range(1, 21)]
    total = client.map_reduce("word_count", chunks, "sum")
    assert total.result(20) == str(sum(range(1, 21)))
    assert client.gather(client.map("word_count", ["a", "b c"]), 10) == ["1", "2"]


def test_failures_are_typed_exceptions_with_the_error_text(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    with pytest.raises(TaskError, match="division by zero"):
        client.submit_compute("1/0").result(10)
    with pytest.raises(TaskError, match="not UTF-8"):
        client.submit("uppercase", b"\xff").result(10)


def test_a_task_no_connected_worker_offers_waits_and_says_why(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    unknown = client.submit("nope", "x")
    command = client.submit_command("echo", ["hi"])
    tagged = client.submit("echo", "x", tags=["gpu"])
    wait_until(lambda: unknown.waiting and command.waiting and tagged.waiting, what="reasons")
    assert unknown.waiting == "waiting: no connected worker offers function 'nope'"
    assert command.waiting is not None and "command 'echo'" in command.waiting
    assert tagged.waiting == "waiting: no connected worker has the tag(s) gpu"
    assert not unknown.done() and client.status(unknown.task_id).state == "Pending"
    asker = cluster.client()  # anyone who asks hears why (status shows it)
    assert asker.status(unknown.task_id).waiting == unknown.waiting
    cluster.add_worker(allow_commands=["echo"], tags=["gpu"])  # now one can: they run
    assert command.result(10) == "hi\n" and tagged.result(10) == "x"
    assert client.cancel(unknown.task_id)


def test_commands_run_without_a_shell_when_allowed(cluster: Cluster) -> None:
    cluster.add_worker(allow_commands=["echo", "sh"])
    client = cluster.client()
    assert client.submit_command("echo hello from vistrit").result(10) == "hello from vistrit\n"
    assert client.submit_command("echo", ["$HOME", "|", "x"]).result(10) == "$HOME | x\n"
    failing = client.submit_command("sh", ["-c", "echo oops >&2; exit 3"])
    with pytest.raises(TaskError, match="exit code 3: oops"):
        failing.result(10)
    info = client.status(failing.task_id)
    assert info.result is not None and info.result.exit_code == 3
    assert info.result.stderr == "oops\n"


# -- scheduling -----------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", [{"prefetch": 0}], indirect=True)
def test_priorities_then_first_in_first_out(cluster: Cluster) -> None:
    cluster.add_worker(slots=1)
    client = cluster.client()
    ORDER.clear()
    blocker = client.submit("test-gate", "prio")
    wait_until(lambda: running(cluster, blocker))
    names = ["low", "normal-1", "high", "critical", "normal-2"]
    futures = [client.submit("test-record", n, priority=n.split("-")[0]) for n in names]
    wait_until(lambda: all(client.status(f.task_id).state == "Pending" for f in futures))
    gate("prio").set()
    client.gather(futures, 10)
    assert ORDER == ["critical", "high", "normal-1", "normal-2", "low"]


def test_capacity_is_never_exceeded_and_one_task_is_prefetched(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=2)
    client = cluster.client()
    futures = [client.submit("test-gate", "capacity") for _ in range(5)]
    wait_until(lambda: worker.running == 3)  # two running, one queued on the worker
    states = sorted(client.status(f.task_id).state for f in futures)
    assert states == ["Pending", "Pending", "Running", "Running", "Scheduled"]
    assert [w.state for w in client.workers()] == [NodeState.Busy]
    gate("capacity").set()
    assert client.gather(futures, 10) == ["capacity"] * 5


@pytest.mark.parametrize(
    ("cluster", "queued"),
    [({}, 4), ({"quick_prefetch": 0}, 1), ({"prefetch": 0}, 0)],
    indirect=["cluster"],
)
def test_a_worker_whose_runs_are_quick_is_given_a_deeper_queue(
    cluster: Cluster, queued: int
) -> None:
    worker = cluster.add_worker(slots=1)
    client = cluster.client()
    assert cluster.coordinator.core is not None
    entry = cluster.coordinator.core.registry.get(worker.id)
    assert entry is not None
    gate("open").set()
    for _ in range(QUICK_RUNS + 1):  # (the first run is told Running: not quick)
        assert client.submit("test-gate", "open").result(10) == "open"
    for _ in range(50):  # a run over a millisecond (a busy machine) starts the count again
        if entry.capacity == 1 + queued:
            break
        client.submit("test-gate", "open").result(10)
    assert entry.capacity == 1 + queued
    futures = client.map("test-gate", ["deep"] * 7)  # one batch: placed at once
    wait_until(lambda: worker.running == 1 + queued, what="the queue to fill")
    # The first runs on: its status (held back, as its function was quick) goes with the
    # next heartbeat, and its worker's queue is back to --prefetch; what is queued stays.
    wait_until(lambda: running(cluster, futures[0]), what="its Running status")
    assert entry.capacity == 1 + min(queued, 1)
    assert worker.running == 1 + queued
    states = [client.status(f.task_id).state for f in futures]
    assert states.count("Scheduled") == queued and states.count("Pending") == 6 - queued
    gate("deep").set()
    assert client.gather(futures, 10) == ["deep"] * 7


def ran_on(cluster: Cluster, futures: list[concurrent.futures.Future[object]]) -> list[str]:
    names = {w.id: w.name for w in cluster.workers}
    client = cluster.clients[0]
    return [names[client.status(f.task_id).worker] for f in futures]  # type: ignore[attr-defined, index]


@pytest.mark.parametrize("cluster", [{"strategy": "round-robin"}], indirect=True)
def test_round_robin_takes_workers_in_turn(cluster: Cluster) -> None:
    cluster.add_worker(name="a")
    cluster.add_worker(name="b")
    client = cluster.client()
    futures = []
    for _ in range(6):
        futures.append(client.submit("echo", "x"))
        futures[-1].result(10)
    assert ran_on(cluster, futures) == ["a", "b", "a", "b", "a", "b"]


@pytest.mark.parametrize("cluster", [{"prefetch": 0}], indirect=True)
def test_least_loaded_spreads_concurrent_work(cluster: Cluster) -> None:
    cluster.add_worker(name="big", slots=4)
    cluster.add_worker(name="small", slots=2)
    client = cluster.client()
    futures = [client.submit("test-gate", "spread") for _ in range(6)]
    wait_until(lambda: sum(w.running for w in cluster.workers) == 6)
    assert sorted(ran_on(cluster, futures)) == ["big"] * 4 + ["small"] * 2
    gate("spread").set()
    client.gather(futures, 10)


@pytest.mark.parametrize("cluster", [{"strategy": "random"}], indirect=True)
def test_random_uses_every_worker(cluster: Cluster) -> None:
    cluster.add_worker(name="a")
    cluster.add_worker(name="b")
    client = cluster.client()
    futures = []
    for _ in range(40):
        futures.append(client.submit("echo", "x"))
        futures[-1].result(10)
    assert set(ran_on(cluster, futures)) == {"a", "b"}  # all on one: odds 2 in 2**40


def test_tags_route_tasks_and_an_unplaceable_task_blocks_nobody(cluster: Cluster) -> None:
    cluster.add_worker(name="plain")
    cluster.add_worker(name="gpu-box", tags=["gpu", "linux"])
    client = cluster.client()
    gpu = [client.submit("echo", "x", tags=["gpu"]) for _ in range(5)]
    client.gather(gpu, 10)
    assert set(ran_on(cluster, gpu)) == {"gpu-box"}
    waiting = client.submit("echo", "needs a tpu", tags=["tpu"])
    after = client.submit("echo", "behind it")
    assert after.result(10) == "behind it"
    assert client.status(waiting.task_id).state == "Pending"
    cluster.add_worker(name="tpu-box", tags=["tpu"])
    assert waiting.result(10) == "needs a tpu"


def test_dependencies_wait_and_failures_propagate(cluster: Cluster) -> None:
    cluster.add_worker(slots=2)
    client = cluster.client()
    first = client.submit("test-gate", "dep")
    second = client.submit("echo", "second", after=[first])
    wait_until(lambda: running(cluster, first))
    assert client.status(second.task_id).state == "Pending"
    gate("dep").set()
    assert second.result(10) == "second"

    broken = client.submit_compute("1/0")
    child = client.submit("echo", "child", after=[broken])
    grandchild = client.submit("echo", "grandchild", after=[child])
    with pytest.raises(TaskError, match=f"dependency {broken.task_id} failed"):
        child.result(10)
    with pytest.raises(TaskError, match=f"dependency {child.task_id} failed"):
        grandchild.result(10)
    late = client.submit("echo", "late", after=[broken])  # a dependency already failed
    with pytest.raises(TaskError, match="failed"):
        late.result(10)
    with pytest.raises(TaskRejected, match="unknown dependency"):
        client.submit("echo", "x", after=[uuid.uuid4()]).result(10)


def test_retries_are_honoured_and_the_final_error_lists_each_attempt(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    assert client.submit("test-flaky", "a:2", retries=2).result(10) == "succeeded on attempt 3"
    with pytest.raises(TaskError) as failed:
        client.submit("test-flaky", "b:5", retries=1).result(10)
    assert "attempt 1: planned failure 1; attempt 2: planned failure 2" in failed.value.error


# -- cancellation ---------------------------------------------------------------------------


def test_cancel_a_task_queued_on_a_worker(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=1)
    client = cluster.client()
    blocker = client.submit("test-gate", "cancel-queued")
    queued = client.submit("echo", "queued")
    wait_until(lambda: worker.running == 2)
    assert queued.cancel() is True
    gate("cancel-queued").set()
    blocker.result(10)
    wait_until(lambda: worker.running == 0)
    assert client.status(queued.task_id).state == "Cancelled"


@pytest.mark.parametrize("cluster", [{"prefetch": 0}], indirect=True)
def test_cancel_a_pending_task(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    cluster.add_worker(slots=1)
    client = cluster.client()
    blocker = client.submit("test-gate", "cancel-pending")
    waiting = client.submit("echo", "never")
    dependent = client.submit("echo", "dependent", after=[waiting])
    wait_until(lambda: running(cluster, blocker))
    with caplog.at_level(logging.WARNING, logger="concurrent.futures"):
        assert waiting.cancel() is True
    assert not [r for r in caplog.records if r.name == "concurrent.futures"]  # told once
    with pytest.raises(concurrent.futures.CancelledError):
        waiting.result(10)
    assert client.status(waiting.task_id).state == "Cancelled"
    with pytest.raises(TaskError, match="cancelled"):
        dependent.result(10)
    gate("cancel-pending").set()
    assert blocker.result(10) == "cancel-pending"
    assert client.cancel(blocker.task_id) is False  # finished: the answer says no


def test_cancel_a_running_task_stops_the_work(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=1)
    client = cluster.client()
    future = client.submit("test-gate", "cancel-running")
    wait_until(lambda: running(cluster, future))
    assert future.cancel() is True
    assert future.cancelled()
    wait_until(lambda: worker.running == 0, what="the worker to stop the task")
    assert client.status(future.task_id).state == "Cancelled"  # the late report changed nothing
    assert client.submit("echo", "next").result(10) == "next"  # the slot is free again


def test_unknown_ids_are_answered(cluster: Cluster) -> None:
    client = cluster.client()
    with pytest.raises(TaskNotFound):
        client.status(uuid.uuid4())
    assert client.cancel(uuid.uuid4()) is False


# -- the client ---------------------------------------------------------------------------


def test_many_requests_in_flight_on_one_connection(cluster: Cluster) -> None:
    cluster.add_worker(slots=4)
    client = cluster.client()
    futures = [client.submit("echo", f"task {n}") for n in range(500)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # queries from many threads too
        statuses = list(pool.map(lambda f: client.status(f.task_id).name, futures[:100]))
    assert statuses == ["echo"] * 100
    assert client.gather(futures, 30) == [f"task {n}" for n in range(500)]
    done = list(client.as_completed(futures, timeout=5))
    assert len(done) == 500


def test_resubmitting_the_same_id_is_idempotent(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    task_id = uuid.uuid4()
    assert client.submit("echo", "once", task_id=task_id).result(10) == "once"
    again = client.submit("echo", "twice?", task_id=task_id)
    assert again.result(10) == "once"  # the first submission's outcome
    assert client.cluster_status().completed_tasks == 1


def test_clients_are_neither_listed_nor_given_tasks(cluster: Cluster) -> None:
    cluster.add_worker(name="the-worker")
    client = cluster.client()
    other = cluster.client()
    assert [w.name for w in client.workers()] == ["the-worker"]
    status = other.cluster_status()
    assert (status.online_workers, status.total_nodes) == (1, 2)
    assert status.leader_id is not None
    assert client.gather(client.map("echo", ["x"] * 20), 10) == ["x"] * 20
    assert other.cluster_status().completed_tasks == 20


def test_task_list_shows_the_newest_first(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    futures = [client.submit("echo", str(n), name=f"t{n}") for n in range(5)]
    client.gather(futures, 10)
    listed = client.tasks(limit=3)
    assert [t.name for t in listed] == ["t4", "t3", "t2"]
    assert all(t.state == "Completed" for t in listed)


def test_bad_arguments_are_refused_locally(cluster: Cluster) -> None:
    client = cluster.client()
    with pytest.raises(ValueError, match="unknown priority"):
        client.submit("echo", "x", priority="urgent")
    with pytest.raises(ValueError, match="cannot be negative"):
        client.submit("echo", "x", retries=-1)
    with pytest.raises(ValueError, match="not a task id"):
        client.status("not-an-id")
    with pytest.raises(TypeError, match="str or bytes"):
        client.submit("echo", 42)  # type: ignore[arg-type]


# -- failures -------------------------------------------------------------------------------

# Workers in these tests heartbeat every 0.2 s: a 1.5 s timeout is seven missed heartbeats,
# so a loaded machine does not make a healthy worker look dead.
FAST_FAILURE = {"heartbeat_timeout": 1.5, "tick_interval": 0.05, "retry_backoff": 0.05}


@pytest.mark.parametrize("cluster", [FAST_FAILURE], indirect=True)
def test_a_silent_worker_loses_its_tasks_to_a_live_one(cluster: Cluster) -> None:
    import time

    from vistrit.protocol import messages as m
    from vistrit.protocol.examples import WORKER

    silent, answer = join_raw(cluster.coordinator.address, WORKER)
    assert isinstance(answer, m.HandshakeAck) and answer.accepted
    silent.send(heartbeat(WORKER.id))
    client = cluster.client()
    future = client.submit("uppercase", "rescued")
    while not isinstance(message := silent.receive(time.monotonic() + 5), m.TaskAssign):
        pass
    running = TaskState.Running(worker_id=WORKER.id, started_at=0, progress=None)
    silent.send(
        m.TaskAssignAck(task_id=message.task.id, accepted=True, worker_id=WORKER.id, reason=None),
        m.TaskStatus(
            task_id=message.task.id, worker_id=WORKER.id, state=running, progress=None, message=None
        ),
    )
    wait_until(lambda: client.status(future.task_id).state == "Running")
    cluster.add_worker(name="live")  # and the silent one says nothing more
    assert future.result(10) == "RESCUED"
    assert [w.name for w in client.workers()] == ["live"]
    record = cluster.coordinator.core.store.records[future.task_id]  # type: ignore[union-attr]
    assert record.errors == ("lost its worker worker-a",) and record.lost_workers == 1
    deadline = time.monotonic() + 5
    while (message := silent.receive(deadline)) is not None:  # the coordinator closed it
        assert isinstance(message, (m.HeartbeatAck, m.TaskAssign, m.Error))
    silent.close()


@pytest.mark.parametrize("cluster", [FAST_FAILURE], indirect=True)
def test_an_attempt_past_its_timeout_is_stopped_on_the_worker(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=1)
    client = cluster.client()
    future = client.submit("test-gate", "never-opened", timeout=1, retries=1)
    with pytest.raises(TaskError) as failed:
        future.result(15)
    assert failed.value.error == "attempt 1: timed out after 1 s; attempt 2: timed out after 1 s"
    wait_until(lambda: worker.running == 0, what="the worker to stop the attempt")
    assert client.submit("echo", "free again").result(10) == "free again"


def test_a_stopping_worker_gives_its_running_task_back(cluster: Cluster) -> None:
    leaving = cluster.add_worker(name="leaving")
    client = cluster.client()
    future = client.submit("test-gate", "handed-back")
    wait_until(lambda: running(cluster, future))
    staying = cluster.add_worker(name="staying")
    leaving.stop()  # cancels its running task, and does not report it as failed
    gate("handed-back").set()
    assert future.result(15) == "handed-back"
    assert client.status(future.task_id).worker == staying.id


@pytest.mark.parametrize("cluster", [FAST_FAILURE], indirect=True)
def test_draining_finishes_running_work_and_hands_back_the_queued(cluster: Cluster) -> None:
    import threading

    draining = cluster.add_worker(name="draining", slots=1)
    client = cluster.client()
    running_task = client.submit("test-gate", "drain")
    queued_task = client.submit("echo", "queued")  # prefetched onto the draining worker
    wait_until(lambda: running(cluster, running_task) and draining.running == 2)
    stopper = threading.Thread(target=draining.stop, kwargs={"drain_timeout": 10})
    stopper.start()
    wait_until(lambda: [w.state for w in client.workers()] == [NodeState.Draining])
    other = cluster.add_worker(name="other")
    assert queued_task.result(10) == "queued"  # handed back at once, run elsewhere
    assert client.status(queued_task.task_id).worker == other.id
    gate("drain").set()
    assert running_task.result(10) == "drain"  # finished where it ran
    stopper.join(10)
    assert client.status(running_task.task_id).worker == draining.id


@pytest.mark.parametrize("cluster", [FAST_FAILURE], indirect=True)
def test_a_drain_that_runs_out_hands_the_task_back_without_counting_a_loss(
    cluster: Cluster,
) -> None:
    leaving = cluster.add_worker(name="leaving", slots=1)
    client = cluster.client()
    future = client.submit("test-gate", "slow-drain")
    wait_until(lambda: running(cluster, future))
    cluster.add_worker(name="staying")
    leaving.stop(drain_timeout=0.3)
    gate("slow-drain").set()
    assert future.result(10) == "slow-drain"
    record = cluster.coordinator.core.store.records[future.task_id]  # type: ignore[union-attr]
    assert record.lost_workers == 0 and record.errors == ()


def test_a_worker_that_rejoins_keeps_its_running_task(tmp_path: object) -> None:
    """The coordinator restarts (on its journal) while a worker runs a task: the worker
    rejoins, says it still holds the task, and the task runs once, there."""
    from pathlib import Path

    from nodes import ORDER

    from vistrit.coordinator import Coordinator
    from vistrit.worker import Worker

    data = Path(str(tmp_path)) / "data"
    first = Coordinator(("127.0.0.1", 0), data_dir=data)
    first.start()
    address = first.address
    worker = Worker(address, slots=1, heartbeat_interval=0.1)
    worker.start()
    from vistrit.client import VistritClient

    client = VistritClient(f"{address[0]}:{address[1]}", request_timeout=10)
    ORDER.clear()
    try:
        future = client.submit("test-gate", "rejoin")
        wait_until(lambda: worker.running == 1)
        first.stop()  # the worker and the client lose it, and try again
        second = Coordinator(address, data_dir=data)
        second.start()
        try:
            core = second.core
            assert core is not None
            wait_until(lambda: core.store.records[future.task_id].status == "Running")
            assert core.store.records[future.task_id].worker == worker.id  # reclaimed
            gate("rejoin").set()
            assert future.result(10) == "rejoin"
            assert core.store.completed_total == 1
        finally:
            client.close()
            worker.stop()
            second.stop()
    finally:
        gate("rejoin").set()
        first.stop()


def test_wait_for_workers_returns_once_enough_have_joined(cluster: Cluster) -> None:
    client = cluster.client()
    with pytest.raises(TimeoutError, match="0 of 1 worker"):
        client.wait_for_workers(1, timeout=0.2)
    cluster.add_worker(name="first")
    assert [w.name for w in client.wait_for_workers(1, timeout=10)] == ["first"]
