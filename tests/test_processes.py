"""The CLI in real processes: ``python -m vistrit coordinator``, ``worker``, ``submit`` and the
rest, on 127.0.0.1 with free ports, checking outputs and exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from spawn import Processes, free_port

pytestmark = pytest.mark.timeout(90)


SLOW_TASKS = (
    "import time\nfrom vistrit import task\n\n"
    "@task\ndef slow(data: bytes) -> bytes:\n    time.sleep(0.01)  # the workload itself\n"
    "    return data.upper()\n"
)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    port = free_port()
    env = {**os.environ, "VISTRIT_COORDINATOR": f"127.0.0.1:{port}", "PYTHONPATH": str(tmp_path)}
    group = Processes(tmp_path, env)
    yield group
    for process in group.running:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


@pytest.fixture
def live(procs: Processes) -> Processes:
    """A coordinator and one worker, started by the CLI exactly as the quick start says."""
    address = procs.env["VISTRIT_COORDINATOR"]
    _, ready = procs.start("coordinator", "--bind", address)
    assert ready == f"vistrit coordinator listening on {address}"
    _, ready = procs.start("worker", "--coordinator", address, "--name", "w1", "--heartbeat", "0.2")
    assert ready == f"vistrit worker w1 joined {address}"
    return procs


def test_the_quick_start(live: Processes) -> None:
    run = live.run("submit", "--task", "hello world")
    assert (run.returncode, run.stdout, run.stderr) == (0, "hello world\n", "")


def test_submit_kinds_and_options(live: Processes) -> None:
    assert live.run("submit", "--task", "hi", "--function", "uppercase").stdout == "HI\n"
    assert live.run("submit", "--expression", "2+3*4").stdout == "14\n"
    run = live.run(
        "submit",
        "--task",
        "x",
        "--priority",
        "critical",
        "--retries",
        "2",
        "--timeout",
        "30",
        "--name",
        "named",
        "--json",
    )
    document = json.loads(run.stdout)
    assert document["state"] == "Completed" and document["name"] == "named"
    assert document["priority"] == "Critical" and document["output"] == "x"


def test_failed_task_exit_code_and_message(live: Processes) -> None:
    run = live.run("submit", "--expression", "1/0")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("error: task ") and "division by zero" in run.stderr
    assert run.stderr.count("\n") == 1


def test_a_waiting_submit_says_why_and_status_shows_it(live: Processes) -> None:
    waiting = live.spawn("submit", "--task", "x", "--function", "nope")
    assert waiting.stderr is not None
    line = waiting.stderr.readline()  # after a second: why it waits
    assert line == "waiting: no connected worker offers function 'nope'\n"
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=20)
    task_id = re.search(r"task ([0-9a-f-]{36}) is still queued", err)
    assert task_id is not None and waiting.returncode == 130
    status = live.run("status", task_id.group(1)[:8]).stdout  # a prefix, as the log shows
    assert "state:    Pending" in status
    assert "waiting:  no connected worker offers function 'nope'" in status
    assert live.run("cancel", task_id.group(1)[:6]).returncode == 0


def test_progress_worker_names_prefixes_and_pages(live: Processes) -> None:
    (live.cwd / "steps.py").write_text(
        "import time\nfrom vistrit import task\n\n@task\ndef steps(data, ctx):\n"
        "    for n in range(1, 6):\n        ctx.progress(n * 20)\n        time.sleep(0.3)\n"
        "    return 'done'\n"
    )
    address = live.env["VISTRIT_COORDINATOR"]
    live.start("worker", "--name", "stepper", "--tasks", "steps", "--coordinator", address)
    run = live.run("submit", "--function", "steps", "--progress", "--task", "x")
    shown = re.findall(r"^progress: (\d+)%$", run.stderr, re.M)  # sampled as it changes
    assert run.stdout == "done\n" and len(shown) >= 2 and shown == sorted(shown, key=int)
    task_id = json.loads(live.run("tasks", "--json", "--limit", "1").stdout)[0]["id"]
    status = live.run("status", task_id[:10]).stdout
    assert re.search(r"^worker:   stepper \([0-9a-f]{8}\)$", status, re.M)
    for n in range(3):
        live.run("submit", "--task", f"t{n}")
    page = json.loads(live.run("tasks", "--json", "--limit", "2", "--offset", "1").stdout)
    everything = json.loads(live.run("tasks", "--json").stdout)
    assert [t["id"] for t in page] == [t["id"] for t in everything[1:3]]
    running = json.loads(live.run("tasks", "--json", "--state", "running").stdout)
    assert running == []
    done = json.loads(live.run("tasks", "--json", "--state", "Completed").stdout)
    assert len(done) == len(everything)
    assert live.run("tasks", "--limit", "1001").returncode == 2
    table = live.run("tasks", "--limit", "1").stdout.splitlines()
    assert table[1].split()[0] == everything[0]["id"][:8]  # short ids, as the logs print


def test_no_wait_status_result_cancel_and_listings(live: Processes) -> None:
    task_id = live.run("submit", "--task", "later", "--no-wait").stdout.strip()
    assert len(task_id) == 36
    assert live.run("result", task_id).stdout == "later\n"
    status = json.loads(live.run("status", task_id, "--json").stdout)
    assert status["state"] == "Completed" and status["output"] == "later"
    cancel = live.run("cancel", task_id)
    assert cancel.returncode == 1 and "it is Completed" in cancel.stderr
    cluster = json.loads(live.run("cluster", "--json").stdout)
    assert cluster["workers"] == 1 and cluster["completed"] >= 1
    workers = json.loads(live.run("workers", "--json").stdout)
    assert [w["name"] for w in workers] == ["w1"] and workers[0]["slots"] == 4
    tasks = json.loads(live.run("tasks", "--json", "--limit", "1").stdout)
    assert [t["id"] for t in tasks] == [task_id]
    table = live.run("tasks").stdout.splitlines()
    assert table[0].split() == ["id", "state", "priority", "name"]


def test_unknown_ids_and_bad_arguments(live: Processes) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    run = live.run("status", unknown)
    assert run.returncode == 3 and run.stderr == f"error: no task {unknown}\n"
    run = live.run("status", "not-an-id")
    assert run.returncode == 2 and run.stderr == "error: not a task id: 'not-an-id'\n"
    run = live.run("status", "fffffff")
    assert run.returncode == 3 and run.stderr == "error: no task starts with fffffff\n"
    run = live.run("submit", "--task", "x", "--after", unknown)
    assert run.returncode == 1 and "unknown dependency" in run.stderr
    run = live.run("submit", "--retries", "-1", "--task", "x")
    assert run.returncode == 2 and "cannot be negative" in run.stderr
    run = live.run("submit", "--task", "x", "--coordinator", "nowhere:99999")
    assert run.returncode == 2 and "bad port" in run.stderr


def test_no_coordinator_is_exit_code_4(procs: Processes) -> None:
    run = procs.run("cluster")
    assert run.returncode == 4
    assert run.stderr.startswith("error: no coordinator answered: 127.0.0.1:")
    assert "Traceback" not in run.stderr
    worker, ready = procs.start("worker", "--reconnect-timeout", "0.5")  # waits that long
    _, err = worker.communicate(timeout=20)
    assert ready == "" and worker.returncode == 4 and "error: cannot join 127.0.0.1:" in err
    assert "no coordinator yet" in err


def test_a_worker_started_before_its_coordinator_joins_it(procs: Processes) -> None:
    address = procs.env["VISTRIT_COORDINATOR"]
    worker = procs.spawn("worker", "--name", "early")
    assert worker.stderr is not None and "no coordinator yet" in worker.stderr.readline()
    procs.start("coordinator", "--bind", address)  # up only now
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == f"vistrit worker early joined {address}"
    assert procs.run("submit", "--task", "late but served").stdout == "late but served\n"


def test_the_console_script_imports_task_modules_from_the_current_folder(
    procs: Processes,
) -> None:
    script = Path(sys.executable).parent / "vistrit"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (not installed)")
    (procs.cwd / "herefunctions.py").write_text(
        "from vistrit import task\n\n@task\ndef here(data: bytes) -> bytes:\n    return b'here'\n"
    )
    env = {k: v for k, v in procs.env.items() if k != "PYTHONPATH"}  # only the cwd to help
    command = [str(script), "worker", "--tasks", "herefunctions", "--reconnect-timeout", "0"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=30, cwd=procs.cwd, env=env
    )
    assert "cannot import --tasks" not in run.stderr
    assert run.returncode == 4 and "cannot join" in run.stderr  # imported; no coordinator


def test_user_functions_from_a_tasks_module(procs: Processes) -> None:
    (procs.cwd / "mytasks.py").write_text(
        textwrap.dedent(
            """
            from vistrit import task

            @task
            def shout(data: bytes) -> str:
                return data.decode().upper() + "!"

            @task(name="progress-demo")
            def progress_demo(data: bytes, ctx) -> int:
                ctx.progress(50)
                return len(data)
            """
        )
    )
    address = procs.env["VISTRIT_COORDINATOR"]
    procs.start("coordinator", "--bind", address)
    procs.start("worker", "--tasks", "mytasks")
    assert procs.run("submit", "--function", "shout", "--task", "hello").stdout == "HELLO!\n"
    assert procs.run("submit", "--function", "progress-demo", "--task", "abc").stdout == "3\n"
    missing = procs.run("worker", "--tasks", "no_such_module")
    assert missing.returncode == 2 and "cannot import --tasks no_such_module" in missing.stderr


def test_commands_need_the_opt_in_and_capture_output(procs: Processes) -> None:
    address = procs.env["VISTRIT_COORDINATOR"]
    procs.start("coordinator", "--bind", address)
    procs.start("worker", "--allow-commands", "echo", "--tag", "shell")
    run = procs.run("submit", "--command", "echo hello from vistrit", "--tag", "shell", "--json")
    document = json.loads(run.stdout)
    assert document["state"] == "Completed" and document["output"] == "hello from vistrit\n"


def test_nodes_stop_cleanly_on_sigterm(live: Processes) -> None:
    coordinator, worker = live.running
    code, err = live.stop(worker)
    assert code == 0 and "w1: stopped" in err and "Traceback" not in err
    code, err = live.stop(coordinator)
    assert code == 0 and "coordinator: stopped" in err and "Traceback" not in err


def test_a_worker_whose_coordinator_does_not_come_back_exits_1(procs: Processes) -> None:
    address = procs.env["VISTRIT_COORDINATOR"]
    coordinator, _ = procs.start("coordinator", "--bind", address)
    worker, _ = procs.start("worker", "--reconnect-timeout", "1")
    procs.stop(coordinator)
    _, err = worker.communicate(timeout=20)
    assert worker.returncode == 1 and "the coordinator did not come back" in err


def test_trace_prints_every_frame_both_ways(live: Processes) -> None:
    trace_port = free_port()
    tracer, ready = live.start(
        "trace",
        "--listen",
        f"127.0.0.1:{trace_port}",
        "--upstream",
        live.env["VISTRIT_COORDINATOR"],
    )
    assert ready.startswith(f"vistrit trace listening on 127.0.0.1:{trace_port}")
    run = live.run("submit", "--task", "traced", "--coordinator", f"127.0.0.1:{trace_port}")
    assert run.stdout == "traced\n"
    tracer.send_signal(signal.SIGTERM)
    out, _ = tracer.communicate(timeout=20)
    for line in [
        "client -> coordinator: Handshake",
        "coordinator -> client: HandshakeAck",
        "client -> coordinator: TaskSubmit",
        "coordinator -> client: TaskSubmitAck",
        "coordinator -> client: TaskOutcome",
    ]:
        assert line in out
    assert "task.payload.data" in out and "checksum" in out


def test_the_demo_is_a_real_cluster(procs: Processes) -> None:
    run = procs.run("demo", "--workers", "3")
    assert run.returncode == 0, run.stderr
    assert "3 workers joined: demo-worker-1, demo-worker-2, demo-worker-3" in run.stdout
    assert "words: 707  [ok]" in run.stdout
    assert "dashboard (open it in a browser): http://127.0.0.1:" in run.stdout
    assert run.stdout.rstrip().endswith("all answers correct")


def test_the_demo_keeps_its_cluster_up_for_the_dashboard_until_ctrl_c(procs: Processes) -> None:
    import http.client
    import json

    demo = procs.spawn("demo", "--keep")
    assert demo.stdout is not None
    lines = []
    while not (lines and lines[-1].startswith("the cluster stays up")):
        line = demo.stdout.readline()
        assert line, f"the demo ended early: {lines}"
        lines.append(line.strip())
    url = next(x for x in lines if x.startswith("dashboard")).rsplit(" ", 1)[-1]
    host_port, token = url.removeprefix("http://").split("/?token=")
    connection = http.client.HTTPConnection(*host_port.split(":"), timeout=10)
    connection.request("GET", "/api/cluster", headers={"Authorization": f"Bearer {token}"})
    view = json.loads(connection.getresponse().read())
    connection.close()
    assert sorted(w["name"] for w in view["workers"]) == ["demo-worker-1", "demo-worker-2"]
    assert view["counts"]["completed_total"] == 28
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0
    assert "stopped the coordinator and the workers" in out
    assert out.rstrip().endswith("all answers correct")


def test_a_frozen_worker_is_declared_dead_and_its_task_runs_elsewhere(procs: Processes) -> None:
    from nodes import wait_until

    from vistrit.client import VistritClient

    address = procs.env["VISTRIT_COORDINATOR"]
    procs.start("coordinator", "--bind", address, "--heartbeat-timeout", "1")
    frozen, _ = procs.start("worker", "--name", "frozen", "--heartbeat", "0.2", "--slots", "1")
    with VistritClient(address) as client:
        wait_until(lambda: [w.name for w in client.workers()] == ["frozen"])
        frozen.send_signal(signal.SIGSTOP)
        future = client.submit("uppercase", "moved")  # goes to the frozen worker, if still listed
        procs.start("worker", "--name", "live", "--heartbeat", "0.2")
        assert future.result(20) == "MOVED"
        wait_until(lambda: [w.name for w in client.workers()] == ["live"])
        assert client.cluster_status().online_workers == 1
        frozen.send_signal(signal.SIGCONT)  # it wakes, finds its connection closed, rejoins
        wait_until(lambda: sorted(w.name for w in client.workers()) == ["frozen", "live"])
        assert client.submit("uppercase", "again").result(10) == "AGAIN"


def test_a_coordinator_killed_mid_run_loses_no_acknowledged_task(procs: Processes) -> None:
    """SIGKILL the coordinator mid-run and restart it on its journal: the same client and
    the same worker reconnect by themselves, and every submitted task completes."""
    from nodes import wait_until

    from vistrit.client import VistritClient

    (procs.cwd / "slow.py").write_text(SLOW_TASKS)
    address = procs.env["VISTRIT_COORDINATOR"]
    data_dir = str(procs.cwd / "data")
    coordinator, _ = procs.start("coordinator", "--bind", address, "--data-dir", data_dir)
    procs.start("worker", "--tasks", "slow", "--slots", "1", "--heartbeat", "0.2")
    with VistritClient(address) as client:
        futures = [client.submit("slow", f"task {n}") for n in range(120)]
        client.status(futures[-1].task_id)  # answered after every submission: all acknowledged
        wait_until(lambda: client.cluster_status().completed_tasks >= 20)
        before = [f.result(0) for f in futures if f.done()]
        coordinator.send_signal(signal.SIGKILL)
        coordinator.communicate(timeout=20)
        procs.start("coordinator", "--bind", address, "--data-dir", data_dir)
        results = client.gather(futures, 60)
        assert results == [f"TASK {n}" for n in range(120)]
        for future, earlier in zip(futures, before):
            assert client.status(future.task_id).output == earlier.encode()  # kept
        status = client.cluster_status()
        assert status.completed_tasks == 120 and status.failed_tasks == 0


def test_chaos_workers_killed_and_restarted_lose_no_task(procs: Processes) -> None:
    """500 tasks while workers are repeatedly SIGKILLed and replaced: every task ends with
    exactly one, correct, outcome."""
    import random

    from nodes import wait_until

    from vistrit.client import VistritClient

    (procs.cwd / "slow.py").write_text(SLOW_TASKS)
    address = procs.env["VISTRIT_COORDINATOR"]
    procs.start(
        "coordinator", "--bind", address, "--heartbeat-timeout", "2", "--retry-backoff", "0.05"
    )
    worker_args = ("worker", "--tasks", "slow", "--slots", "1", "--heartbeat", "0.2")
    workers = [procs.start(*worker_args)[0] for _ in range(3)]
    rng = random.Random(5)
    with VistritClient(address) as client:
        futures = [client.submit("slow", f"chaos {n}", retries=3) for n in range(500)]
        # Eight kills, one each time another 40 tasks are done: every one of them mid-run.
        for round_ in range(1, 9):
            wait_until(lambda r=round_: sum(f.done() for f in futures) >= 40 * r, timeout=60)
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            workers.append(procs.start(*worker_args)[0])
        assert client.gather(futures, 60) == [f"CHAOS {n}" for n in range(500)]
        status = client.cluster_status()
        assert (status.completed_tasks, status.failed_tasks) == (500, 0)


def test_submit_reads_piped_data_and_a_dash_reads_standard_input(live: Processes) -> None:
    piped = live.run("submit", "--function", "uppercase", stdin="hi from a pipe")
    assert (piped.returncode, piped.stdout) == (0, "HI FROM A PIPE\n")
    dash = live.run("submit", "--function", "word_count", "--task", "-", stdin="one two three")
    assert dash.stdout == "3\n"
    given = live.run("submit", "--task", "given wins", stdin="ignored")
    assert given.stdout == "given wins\n"


def test_ctrl_c_on_a_waiting_submit_says_which_task_and_how_to_cancel_it(
    procs: Processes,
) -> None:
    address = procs.env["VISTRIT_COORDINATOR"]
    procs.start("coordinator", "--bind", address)
    procs.start("worker", "--allow-commands", "sleep", "--heartbeat", "0.2")
    waiting = procs.spawn("submit", "--command", "sleep 30")
    deadline = time.monotonic() + 30
    while "running:   1" not in procs.run("cluster").stdout:
        assert time.monotonic() < deadline, "the task never ran"
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=20)
    assert waiting.returncode == 130
    said = r"interrupted: task (\S+) is still queued or running; cancel it with: "
    match = re.search(said + r"python -m vistrit cancel (\S+)", err)
    assert match is not None and match.group(1) == match.group(2), err
    assert procs.run("cancel", match.group(1)).returncode == 0


def test_a_port_chosen_by_the_system_is_logged_in_a_line_scripts_can_parse(
    procs: Processes,
) -> None:
    coordinator, ready = procs.start("coordinator", "--bind", "127.0.0.1:0")
    port = int(ready.rsplit(":", 1)[1])
    assert port > 0 and coordinator.stderr is not None
    lines = iter(coordinator.stderr.readline, "")
    logged = next(line for line in lines if "listening on" in line)
    match = re.search(r"listening on (\S+):(\d+)", logged)
    assert match is not None and match.groups() == ("127.0.0.1", str(port))
