"""Python calls on real processes on 127.0.0.1: a coordinator and workers started by the
CLI (``--tasks callables``), a client in the test. Typed round trips of every value kind,
callables by path, a refused module, remote tracebacks, routing between a capable and an
incapable worker, the waiting reason, and an earlier attempt's late report."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callables
import pytest
from hypothesis import HealthCheck, given, settings
from spawn import Processes, free_port, stop_all
from test_values import values

import vistrit
from vistrit.client import TaskError, VistritClient

pytestmark = pytest.mark.timeout(120)

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A coordinator; ``alpha`` with the built-ins only; ``gamma`` with ``--tasks callables``."""
    cwd = tmp_path_factory.mktemp("calls")
    address = f"127.0.0.1:{free_port()}"
    path = os.pathsep.join([str(TESTS), str(cwd)])
    env = {**os.environ, "VISTRIT_COORDINATOR": address, "PYTHONPATH": path}
    group = Processes(cwd, env)
    try:
        group.start("coordinator", "--bind", address, "--heartbeat-timeout", "3")
        beat = ("--heartbeat", "0.2", "--coordinator", address)
        _, alpha = group.start("worker", "--name", "alpha", *beat)
        gamma, ready = group.start("worker", "--name", "gamma", "--tasks", "callables", *beat)
        assert alpha.endswith(address) and ready.endswith(address)
        with VistritClient(address, request_timeout=20) as client:
            client.wait_for_workers(2, timeout=30)
            yield {"address": address, "client": client, "gamma": gamma.pid, "group": group}
    finally:
        stop_all(group)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=values)
def test_every_value_kind_round_trips_through_a_worker_process(
    hosts: dict[str, Any], value: Any
) -> None:
    client: VistritClient = hosts["client"]
    assert client.submit(callables.identity, value).result(30) == value


def test_callables_by_path_run_only_where_their_module_was_allowed(hosts: dict[str, Any]) -> None:
    client: VistritClient = hosts["client"]
    futures = [client.submit(callables.pid, retries=5) for _ in range(8)]
    futures += [client.submit("callables:pid") for _ in range(4)]
    assert {f.result(30) for f in futures} == {hosts["gamma"]}  # never alpha, never retried
    assert client.submit(callables.area, 2, height=2.5).result(30) == 5.0


def test_a_module_no_worker_allows_waits_saying_why(hosts: dict[str, Any]) -> None:
    client: VistritClient = hosts["client"]
    future = client.submit("os:getcwd")
    deadline = time.monotonic() + 10
    while future.waiting is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert future.waiting == (
        "waiting: no connected worker offers functions of module 'os' "
        "(a worker started with --tasks os)"
    )
    assert client.status(future.task_id).waiting == future.waiting
    assert client.cancel(future.task_id) and future.cancelled()


def test_a_remote_exception_comes_back_with_its_type_and_traceback(hosts: dict[str, Any]) -> None:
    client: VistritClient = hosts["client"]
    error = client.submit(callables.fail, "from afar").exception(30)
    assert isinstance(error, TaskError) and isinstance(error, ValueError)
    assert error.remote_type == "ValueError" and error.remote_message == "from afar"
    assert error.remote_traceback is not None
    assert re.search(r'callables\.py", line \d+, in _deeper', error.remote_traceback)


def test_the_executor_url_reaches_the_processes(hosts: dict[str, Any]) -> None:
    with vistrit.executor(f"vistrit://{hosts['address']}") as pool:
        assert list(pool.map(callables.area, [1, 2], [3, 4], chunksize=2)) == [3, 8]
        done, _ = concurrent.futures.wait([pool.submit(callables.identity, None)], timeout=30)
        assert [f.result() for f in done] == [None]


def test_a_late_report_of_an_earlier_attempt_is_not_counted_against_a_later_one(
    hosts: dict[str, Any],
) -> None:
    """``stubborn`` ignores its cancellation for 2.5 s, then says "cancelled": longer than
    its 1 s timeout and the pause before a retry. Each of the three attempts must end
    "timed out": none may be blamed on the late report of the one before it, and none may
    start on gamma (the one worker that can run it) while the last one holds its slot."""
    client: VistritClient = hosts["client"]
    started = time.monotonic()
    future = client.submit(callables.stubborn, 2.5, timeout=1, retries=2)
    error = future.exception(60)
    assert isinstance(error, TaskError)
    assert error.error == "; ".join(f"attempt {n}: timed out after 1 s" for n in (1, 2, 3))
    assert time.monotonic() - started >= 5.0  # attempt 3 began after attempt 2 returned


def test_the_cli_shows_a_calls_value(hosts: dict[str, Any]) -> None:
    client: VistritClient = hosts["client"]
    group: Processes = hosts["group"]
    plain = client.submit(callables.area, 2, 3)
    raw = client.submit(callables.identity, {"k": b"\x00"})
    assert plain.result(30) == 6 and raw.result(30) == {"k": b"\x00"}
    shown = group.run("result", str(plain.task_id), "--coordinator", hosts["address"])
    assert shown.stdout == "6\n"
    status = group.run("status", str(raw.task_id)[:8], "--json", "--coordinator", hosts["address"])
    document = json.loads(status.stdout)
    assert document["output"] is None and document["output_repr"] == "{'k': b'\\x00'}"
    listing = group.run("status", str(plain.task_id), "--json", "--coordinator", hosts["address"])
    assert json.loads(listing.stdout)["output"] == 6
