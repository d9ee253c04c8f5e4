"""One conformance suite for ``vistrit.executor(url)``: the same script on every backend
installed (``vistrit://`` and ``local://`` always, ``dask://`` where Dask is), asserting
the ``concurrent.futures.Executor`` contract. ``vistrit://`` is a coordinator and a worker
in real processes on 127.0.0.1, started by the CLI. Then what only Vistrit's futures add,
on in-process nodes (some tests hold a task on a gate)."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callables
import pytest
from nodes import Cluster, wait_until
from spawn import Processes, dask_cluster, free_port, stop_all

import vistrit
from vistrit.executors import VistritExecutor
from vistrit.results import TaskError

pytestmark = pytest.mark.timeout(90)

TESTS = Path(__file__).resolve().parent
HAVE_DASK = importlib.util.find_spec("distributed") is not None
BACKENDS = [
    "vistrit",
    "local",
    pytest.param(
        "dask", marks=pytest.mark.skipif(not HAVE_DASK, reason="Dask is not installed here")
    ),
]


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A coordinator and a worker (``--tasks callables``, 4 slots) in real processes: the
    ``vistrit://`` URL. Shared by the module's tests; stopped at its end."""
    cwd = tmp_path_factory.mktemp("executor")
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(cwd)])}
    group = Processes(cwd, env)
    try:
        group.start("coordinator", "--bind", address)
        beat = ("--heartbeat", "0.2", "--slots", "4")
        _, ready = group.start("worker", "--coordinator", address, "--tasks", "callables", *beat)
        assert ready.endswith(address), ready
        yield f"vistrit://{address}"
    finally:
        stop_all(group)


@pytest.fixture(params=BACKENDS)
def pool(request: pytest.FixtureRequest) -> Iterator[concurrent.futures.Executor]:
    """An executor of the backend named by the parameter, from its URL."""
    if request.param == "vistrit":
        executor = vistrit.executor(request.getfixturevalue("processes"))
    elif request.param == "local":
        executor = vistrit.executor("local://2")
    else:
        executor = request.getfixturevalue("dask_url")
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def dask_url() -> Iterator[concurrent.futures.Executor]:
    """A Dask scheduler and worker in this process, on 127.0.0.1, and its executor."""
    pytest.importorskip("distributed")
    with dask_cluster() as (_, url):
        yield vistrit.executor(url)


def test_submit_returns_the_value_with_its_type(pool: concurrent.futures.Executor) -> None:
    assert pool.submit(callables.area, 3, 4.5).result(30) == 13.5
    value = {"k": [1, (2, None)], "b": b"\x00", "big": 2**70}
    assert pool.submit(callables.identity, value).result(30) == value
    assert pool.submit(callables.echo, 1, x=2).result(30) == ((1,), {"x": 2})


def test_a_failure_raises_the_remote_type(pool: concurrent.futures.Executor) -> None:
    future = pool.submit(callables.fail, "bad input")
    with pytest.raises(ValueError, match="bad input"):
        future.result(30)
    assert isinstance(future.exception(30), ValueError)


def test_map_keeps_order_with_several_iterables_and_a_chunksize(
    pool: concurrent.futures.Executor,
) -> None:
    assert list(pool.map(callables.area, [1, 2, 3], [4, 5, 6], timeout=30)) == [4, 10, 18]
    squares = pool.map(callables.area, range(10), range(10), chunksize=3, timeout=30)
    assert list(squares) == [i * i for i in range(10)]
    assert list(pool.map(callables.area, [], [])) == []


def test_map_raises_when_a_result_is_late(pool: concurrent.futures.Executor) -> None:
    results = pool.map(callables.sleep_then, [3.0], ["late"], timeout=0.2)
    with pytest.raises(TimeoutError):
        list(results)


def test_callbacks_and_as_completed(pool: concurrent.futures.Executor) -> None:
    seen: list[Any] = []
    done = threading.Event()
    future = pool.submit(callables.identity, "called back")
    future.add_done_callback(lambda f: (seen.append(f.result()), done.set()))
    assert done.wait(30) and seen == ["called back"]
    futures = [pool.submit(callables.identity, n) for n in range(5)]
    finished = {f.result() for f in concurrent.futures.as_completed(futures, timeout=30)}
    assert finished == set(range(5))
    late = []
    future.add_done_callback(late.append)  # added after it finished: called at once
    assert late == [future]


def test_a_finished_future_is_neither_running_nor_cancellable(
    pool: concurrent.futures.Executor,
) -> None:
    future = pool.submit(callables.identity, 1)
    assert future.result(30) == 1
    assert future.done() and not future.running()
    assert not future.cancel() and not future.cancelled()


def test_after_shutdown_submit_raises(pool: concurrent.futures.Executor) -> None:
    future = pool.submit(callables.sleep_then, 0.2, "finished")
    pool.shutdown(wait=True)
    assert future.done() and future.result() == "finished"
    with pytest.raises(RuntimeError):
        pool.submit(callables.identity, 1)


# -- what only some backends do ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["vistrit", "local"])
def test_shutdown_can_cancel_what_has_not_started(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Dask's executor takes no ``cancel_futures`` (see docs/migrating.rst)."""
    if backend == "vistrit":
        cluster: Cluster = request.getfixturevalue("cluster")
        cluster.add_worker(slots=1, modules=["callables"])
        pool: concurrent.futures.Executor = VistritExecutor(cluster.address)
    else:
        pool = concurrent.futures.ProcessPoolExecutor(1)
    futures = [pool.submit(callables.sleep_then, 0.5, n) for n in range(4)]
    wait_until(futures[0].running, what="the first task to run")
    pool.shutdown(wait=True, cancel_futures=True)
    assert futures[0].result() == 0
    assert futures[-1].cancelled()


def test_running_is_true_only_while_it_runs_and_then_cancel_is_refused(cluster: Cluster) -> None:
    cluster.add_worker(slots=1, modules=["callables"])
    with VistritExecutor(cluster.address) as pool:
        gate = callables.GATES.setdefault("held", threading.Event())
        running = pool.submit(callables.wait_for_gate, "held")
        queued = pool.submit(callables.identity, "never")
        wait_until(running.running, what="the task to run")
        assert not running.done() and not running.cancel()  # running: cannot be cancelled
        assert not queued.running()
        assert queued.cancel() and queued.cancelled()  # pending: cancelled at once
        assert concurrent.futures.wait([queued], timeout=1).done == {queued}
        gate.set()
        assert running.result(30) == "held" and not running.running()
        with pytest.raises(concurrent.futures.CancelledError):
            queued.result(1)


def test_map_sends_its_calls_in_batches_and_shutdown_still_waits_for_them(
    cluster: Cluster,
) -> None:
    cluster.add_worker(slots=4, modules=["callables"])
    seen: list[str] = []
    cluster.coordinator.frame_tap = lambda way, _, msgs: seen.extend(
        type(msg).__name__ for msg in msgs if way == "in"
    )
    with VistritExecutor(cluster.address) as pool:
        assert list(pool.map(callables.area, range(1200), range(1200), timeout=60)) == [
            n * n for n in range(1200)
        ]
        assert seen.count("TaskSubmitBatch") == 2 and "TaskSubmit" not in seen  # 1,000 + 200
        chunks = pool.map(callables.identity, range(10), chunksize=3, timeout=60)
        assert list(chunks) == list(range(10)) and seen.count("TaskSubmitBatch") == 3
        with pytest.raises(ValueError, match="'module:name'"):
            pool.submit("word_count", "a b")  # type: ignore[arg-type]
        pending = list(pool.map(callables.identity, range(3)))
    assert pending == [0, 1, 2] and not pool._futures


def test_a_task_error_carries_the_remote_traceback(cluster: Cluster) -> None:
    cluster.add_worker(modules=["callables"])
    client = cluster.client()
    future = client.submit(callables.fail, "deep down")
    error = future.exception(30)
    assert isinstance(error, TaskError) and isinstance(error, ValueError)
    assert error.remote_type == "ValueError" and error.remote_message == "deep down"
    assert error.remote_traceback is not None
    assert "in _deeper" in error.remote_traceback and "raise ValueError" in error.remote_traceback
    assert "in fail" in error.remote_traceback and "run_call" not in error.remote_traceback
    assert "Remote traceback" in str(error)


def test_a_module_the_worker_was_not_started_with_is_never_imported(cluster: Cluster) -> None:
    cluster.add_worker(modules=["callables"])
    client = cluster.client()
    assert client.submit("callables:pid").result(30) > 0
    # A worker offers only its modules: a Call of another waits, saying so.
    elsewhere = client.submit("json:dumps", [1])
    wait_until(lambda: elsewhere.waiting, what="the waiting reason")
    assert "module 'json'" in str(elsewhere.waiting)
    client.cancel(elsewhere.task_id)
    # Asked directly (as a hostile coordinator could), the worker refuses it.
    from vistrit.worker.calls import resolve
    from vistrit.worker.functions import TaskFailed

    for path in ("json:dumps", "callables:threading.Event", "callables:time", "nocolon"):
        with pytest.raises(TaskFailed):
            resolve(path, {"callables"})


def test_values_that_cannot_travel_fail_clearly(cluster: Cluster) -> None:
    cluster.add_worker(modules=["callables"])
    client = cluster.client()
    with pytest.raises(TypeError, match="cannot send a set"):
        client.submit(callables.identity, {1, 2})
    with pytest.raises(TypeError, match="top of a module"):
        client.submit(lambda: 1)
    with pytest.raises(TaskError, match="cannot travel"):
        client.submit(callables.returns_a_set).result(30)


def test_progress_reaches_the_submitting_client(cluster: Cluster) -> None:
    cluster.add_worker(modules=["callables"])
    client = cluster.client()
    future = client.submit(callables.with_progress, 10)
    seen = set()
    deadline = time.monotonic() + 30
    while not future.done() and time.monotonic() < deadline:
        if future.progress is not None:
            seen.add(future.progress)
        time.sleep(0.01)
    assert future.result(30) == 10
    assert len(seen) >= 2 and max(seen) <= 100


def test_executor_urls_are_checked() -> None:
    for url in ("localhost:7878", "ftp://x", "local://two"):
        with pytest.raises(ValueError):
            vistrit.executor(url)


@vistrit.task(name="test-divide")
def _divide(data: bytes) -> float:
    return 1 / int(data)


def test_a_task_function_by_name_that_raises_sends_its_traceback_too(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    error = client.submit("test-divide", "0").exception(30)
    assert isinstance(error, TaskError) and error.remote_traceback is not None
    assert "in _divide" in error.remote_traceback
    assert error.error == "ZeroDivisionError: division by zero"


def test_a_timed_out_function_that_runs_on_keeps_its_slot_busy(cluster: Cluster) -> None:
    worker = cluster.add_worker(slots=1, modules=["callables"])
    client = cluster.client()
    gate = callables.GATES.setdefault("overdue", threading.Event())
    overdue = client.submit(callables.wait_for_gate, "overdue", timeout=1)
    with pytest.raises(TaskError, match="timed out after 1 s"):
        overdue.result(30)
    (listed,) = client.workers()  # the function still runs: its slot is not free
    assert listed.id == worker.id and listed.running_tasks == 1
    after = client.submit(callables.identity, "next")
    assert not after.done()
    gate.set()  # it returns (too late to count): the slot is free, the next task runs
    assert after.result(30) == "next"
    wait_until(lambda: client.workers()[0].running_tasks == 0, what="the slot to be free")


@vistrit.task(name="test-binary")
def _binary(data: bytes) -> bytes:
    return b"\xff" + data


def test_text_output_is_never_garbled_and_timeouts_take_fractions(cluster: Cluster) -> None:
    cluster.add_worker()
    client = cluster.client()
    with pytest.raises(TaskError, match="cannot be read"):
        client.submit("test-binary", "x").result(30)  # str data, bytes that are not UTF-8
    assert client.submit("test-binary", b"x").result(30) == b"\xffx"  # as bytes: intact
    future = client.submit("echo", "x", timeout=2.5)
    assert future.result(30) == "x"
    assert client.status(future.task_id).task.timeout_seconds == 3  # whole seconds, up
