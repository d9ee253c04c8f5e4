"""The command line, run as a learner runs it: ``python -m vistrit ...`` in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import vector
from spawn import Processes

HEARTBEAT = vector("Heartbeat")


def vistrit(
    *args: str, stdin: str = "", cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return Processes(cwd, dict(os.environ)).run(*args, stdin=stdin, timeout=timeout)


def test_decode_prints_the_byte_table(tmp_path: Path) -> None:
    run = vistrit("decode", HEARTBEAT.hex(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["offset", "len", "bytes", "field", "type", "value"]
    assert "0x03 = Heartbeat" in run.stdout
    row = next(line for line in lines if " state " in line)
    assert row.split()[:2] == ["50", "4"] and row.endswith("1 = Ready")
    assert lines[-1].split()[-1] == "(ok)"
    assert len(lines) == 1 + 13  # a header line and one line per span


def test_decode_reads_spaced_hex_with_several_frames_from_stdin(tmp_path: Path) -> None:
    spaced = " ".join(f"{b:02x}" for b in HEARTBEAT + vector("HeartbeatAck"))
    run = vistrit("decode", stdin=spaced + "\n", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "frame 1" in run.stdout and "frame 2" in run.stdout
    assert "0x04 = HeartbeatAck" in run.stdout


def test_decode_json_uses_the_protocol_field_names(tmp_path: Path) -> None:
    run = vistrit("decode", "--json", vector("TaskResult").hex(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["message"] == "TaskResult" and document["type"] == "0x15"
    assert list(document["fields"]["result"]) == [
        "task_id", "success", "data", "error", "exit_code", "duration_ms", "worker_id",
        "stdout", "stderr",
    ]  # fmt: skip
    assert document["fields"]["result"]["data"] == "3134"  # b"14" as hex


def test_decode_of_a_bad_frame_says_what_is_wrong_and_exits_1(tmp_path: Path) -> None:
    bad = HEARTBEAT[:-1] + b"\x00"
    run = vistrit("decode", bad.hex(), cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0, "one line, no traceback"
    assert "ChecksumMismatch (Protocol): Checksum mismatch: expected 0x4664bf00" in run.stderr
    assert "MISMATCH" in run.stdout  # the table shows how far the frame made sense
    json_run = vistrit("decode", "--json", bad.hex(), cwd=tmp_path)
    assert json_run.returncode == 1 and json_run.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [("5649zz", "not hex: 'z'"), ("564", "odd number of hex digits (3)"), ("   ", "no hex given")],
)
def test_decode_of_bad_hex_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    run = vistrit("decode", stdin=text, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == f"error: {message}"


def test_wire_demo_round_trips_every_message(tmp_path: Path) -> None:
    run = vistrit("demo", "--wire", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "22 messages, all equal to what was sent" in run.stdout
    assert "task.payload.function" in run.stdout


def test_election_demo_draws_a_real_election_and_a_failover(tmp_path: Path) -> None:
    run = vistrit("--log-level", "ERROR", "demo", "--election", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split("coordinator 3 stops (as if killed)")
    assert "LeaderAnnounce t" in before and "ReplicaSnapshot" in before
    assert "unanswered: now Leader" in before
    assert "unanswered: now Leader" in after and "LeaderAnnounce t" in after
    assert all(" (3)" not in line for line in after.splitlines() if "LeaderAnnounce" in line)


def test_cluster_options_are_checked(tmp_path: Path) -> None:
    for args, message in [
        (("--id", "1"), "--id and --peers go together"),
        (("--peers", "2@127.0.0.1:7001"), "--id and --peers go together"),
        (("--id", "1", "--peers", "two@127.0.0.1:7001"), "ID@HOST:PORT"),
        (("--id", "1", "--peers", "1@127.0.0.1:7001"), "at least one peer"),
        (("--id", "0", "--peers", "2@127.0.0.1:7001"), "must be positive"),
    ]:
        run = vistrit("coordinator", "--bind", "127.0.0.1:0", *args, cwd=tmp_path)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)


def test_bench_failover_measures_a_real_failover(tmp_path: Path) -> None:
    run = vistrit("bench", "failover", "--repeats", "1", "--tasks", "200", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    figures = row["figures"]
    assert figures["first_accepted_s"] > 0 and figures["run_completed_s"] > 0
    assert row["settings"]["coordinators"] == 3


def test_bench_replication_compares_one_coordinator_with_three(tmp_path: Path) -> None:
    run = vistrit(
        "bench", "replication", "--repeats", "1", "--tasks", "1000", "--json", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    figures = row["figures"]
    one, three = figures.pop("tasks_per_s_1_coordinator"), figures.pop("tasks_per_s_3_coordinators")
    assert one > 0 and three > 0
    assert figures.pop("cost_percent") == pytest.approx(100 * (1 - three / one))  # one repeat
    # where the CPU went, each role apart: the followers are not counted as the leader
    roles = {
        1: ("coordinator", "workers", "client"),
        3: ("leader", "followers", "workers", "client"),
    }
    assert set(figures) == {f"{r}_cpu_us_per_task_{n}" for n, names in roles.items() for r in names}
    assert min(figures.values()) >= 0 and figures["client_cpu_us_per_task_3"] > 0
    # the leader, which the client and workers talk to, works harder than a follower (about
    # three times, so that /proc's 10 ms ticks cannot turn it round over 1,000 tasks)
    assert figures["leader_cpu_us_per_task_3"] > figures["followers_cpu_us_per_task_3"] / 2


@pytest.mark.timeout(30)
def test_bench_takes_the_leader_only_from_among_its_own_coordinators() -> None:
    import uuid
    from types import SimpleNamespace

    from vistrit.bench.cluster import coordinator_roles

    def told(leader: uuid.UUID | None) -> Any:
        status = SimpleNamespace(leader_id=leader)
        return SimpleNamespace(cluster_status=lambda: status)

    pids = [101, 102, 103]  # coordinators 1, 2 and 3
    assert coordinator_roles(told(uuid.UUID(int=2)), pids) == {
        "leader": [102],
        "followers": [101, 103],
    }
    assert coordinator_roles(told(None), [101]) == {"coordinator": [101]}
    for leader in (None, uuid.UUID(int=0), uuid.UUID(int=4)):  # none, or not one of ours
        with pytest.raises(RuntimeError, match="no leader among coordinators 1 to 3"):
            coordinator_roles(told(leader), pids)


def test_bench_journal_measures_w1_and_w2_in_each_fsync_mode(tmp_path: Path) -> None:
    run = vistrit(
        "bench", "journal", "--repeats", "1", "--tasks", "200", "--round-trips", "20", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    modes = ("none", "never", "batch", "always")
    expected = {f"tasks_per_s_{mode}" for mode in modes} | {f"p50_us_{mode}" for mode in modes}
    assert set(row["figures"]) == expected
    assert all(value > 0 for value in row["figures"].values())
    assert row["settings"]["round_trips"] == 20


def test_bench_dashboard_measures_w1_with_the_dashboard_open(tmp_path: Path) -> None:
    run = vistrit("bench", "dashboard", "--repeats", "1", "--tasks", "300", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)["figures"]
    assert figures["tasks_per_s_without"] > 0 and figures["tasks_per_s_with"] > 0
    assert figures["coordinator_cpu_us_per_task_with"] > 0
    ratio = figures["tasks_per_s_with"] / figures["tasks_per_s_without"]
    assert figures["cost_percent"] == pytest.approx(100 * (1 - ratio))


@pytest.mark.timeout(300)
def test_bench_curves_measure_tasks_workers_prefetch_clients_and_a_backlog(
    tmp_path: Path,
) -> None:
    run = vistrit(
        "bench", "curves", "--repeats", "1", "--tasks", "200", "--round-trips", "64", "--json",
        cwd=tmp_path, timeout=280,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)
    figures = row["figures"]
    assert row["settings"]["tasks"] == [20, 200, 2000] and row["settings"]["backlog"] == 2000
    for count in (20, 200, 2000):  # (CPU time is counted in ticks of 10 ms: 20 tasks may read 0)
        assert figures[f"tasks_{count}_per_s"] > 0 and figures[f"tasks_{count}_cpu_us"] >= 0
    assert figures["tasks_2000_cpu_us"] > 0
    for count in (1, 2, 4, 8, 16):
        assert figures[f"workers_{count}_per_s"] > 0
    assert row["settings"]["prefetch"] == [0, 1, 2, 4, 16]
    for depth in (0, 1, 2, 4, 16):
        assert figures[f"prefetch_{depth}_per_s"] > 0 and figures[f"prefetch_{depth}_cpu_us"] >= 0
    for count in (1, 4, 16):
        p50, p99 = figures[f"clients_{count}_p50_us"], figures[f"clients_{count}_p99_us"]
        assert 0 < p50 <= p99
    assert figures["backlog_submitted_per_s"] > 0 and figures["backlog_drain_s"] > 0


@pytest.mark.timeout(240)
def test_bench_instructions_counts_the_coordinators_instructions_per_task(tmp_path: Path) -> None:
    from vistrit.bench import instructions

    if not instructions.available():
        assert not os.environ.get("VISTRIT_REQUIRE_VALGRIND"), "set by .ci/run, which installs it"
        run = vistrit("bench", "instructions", cwd=tmp_path)
        assert run.returncode == 2 and "apt-get install valgrind" in run.stderr
        pytest.skip("valgrind is not installed here: only the refusal was checked")
    before = _pids("-f", "tool=callgrind")
    run = vistrit(
        "bench", "instructions", "--repeats", "1", "--tasks", "300", "--round-trips", "30",
        "--json", cwd=tmp_path, timeout=220,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)
    assert row["settings"] == {"tasks": 300, "round_trips": 30, "repeats": 1}
    figures = row["figures"]
    assert set(figures) == {
        "coordinator_instructions_per_w1_task",
        "coordinator_instructions_per_w2_round_trip",
    }
    # A task is tens of thousands of the interpreter's instructions at the very least
    # (some 600,000 here): a count never switched on reads 0, and one left on while the
    # coordinator started and warmed up, many millions a task.
    assert all(20_000 < value < 5_000_000 for value in figures.values()), figures
    assert _pids("-f", "tool=callgrind") == before  # the coordinator under valgrind stopped


def test_bench_codec_prints_one_json_line_per_message(tmp_path: Path) -> None:
    run = vistrit("bench", "codec", "--seconds", "0.01", "--repeats", "1", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [row["workload"] for row in rows] == ["small", "medium", "1MiB"]
    assert rows[2]["frame_bytes"] > 1 << 20
    for row in rows:
        assert row["round_trip_per_s"] > 0 and row["baseline_round_trip_per_s"] > 0


def test_bench_table_and_bad_options(tmp_path: Path) -> None:
    run = vistrit("bench", "codec", "--seconds", "0.01", "--repeats", "1", cwd=tmp_path)
    assert run.returncode == 0 and "round trips/s" in run.stdout
    bad = vistrit("bench", "--repeats", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "must be positive" in bad.stderr
    unknown = vistrit("bench", "speed", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown workload 'speed'" in unknown.stderr


@pytest.mark.timeout(120)
def test_bench_cluster_workloads_print_one_json_line_each(tmp_path: Path) -> None:
    run = vistrit(
        "bench",
        "throughput",
        "latency",
        "scaling",
        "payload",
        "--json",
        "--repeats",
        "1",
        "--tasks",
        "300",
        "--round-trips",
        "30",
        "--cpu-tasks",
        "4",
        "--payload-tasks",
        "2",
        "--payload-mib",
        "1",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    rows = {row["bench"]: row for row in map(json.loads, run.stdout.splitlines())}
    assert list(rows) == ["floor", "throughput", "latency", "scaling", "payload"]
    floor = rows["floor"]["figures"]
    assert floor["round_trip_p50_us"] > 0 and floor["bulk_mb_per_s"] > 0
    assert floor["bare_frames_per_s"] > floor["round_trips_per_s"] > 0
    # W2's skeleton crosses two connections, not one, and wakes six threads in turn
    assert floor["skeleton_round_trip_p50_us"] > floor["round_trip_p50_us"]
    for name in ("throughput", "latency", "payload"):  # beside the floor, and as a ratio
        assert rows[name]["floor"] == floor and rows[name]["ratio"]
    assert "ratio" not in rows["scaling"]
    p50 = rows["latency"]["figures"]["p50_us"]
    bare, skeleton = p50 / floor["round_trip_p50_us"], p50 / floor["skeleton_round_trip_p50_us"]
    assert rows["latency"]["ratio"] == (
        f"{bare:.2f} bare round trips per task; {skeleton:.2f} skeleton round trips per task"
    )
    assert rows["throughput"]["figures"]["coordinator_cpu_us_per_task"] > 0
    assert rows["throughput"]["figures"]["tasks_per_s"] > 0
    assert rows["throughput"]["settings"]["tasks"] == 300
    assert 0 < rows["latency"]["figures"]["p50_us"] <= rows["latency"]["figures"]["p99_us"]
    assert rows["scaling"]["figures"]["speedup"] > 0
    assert rows["payload"]["figures"]["mb_per_s"] > 0
    for name, unit in (("latency", "us_per_round_trip"), ("payload", "ms_per_call")):
        cpu = {key: value for key, value in rows[name]["figures"].items() if "_cpu_" in key}
        assert set(cpu) == {f"{role}_cpu_{unit}" for role in ("coordinator", "workers", "client")}
        assert min(cpu.values()) >= 0 and cpu[f"client_cpu_{unit}"] > 0  # (/proc counts ticks)


@pytest.mark.timeout(60)
def test_cpu_meter_counts_each_role_s_processes_apart() -> None:
    from vistrit.bench.base import CpuMeter

    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.3: pass\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as busy:
        try:
            meter = CpuMeter(coordinator=[busy.pid], workers=[])
            meter.start()
            assert busy.stdout is not None and busy.stdout.readline() == "done\n"
            figures = meter.per(2, 1e-3, "ms_per_half")
        finally:
            busy.kill()
            busy.wait(10)
    # about 300 ms burnt in all, most of it after start(): half of it per "half"
    assert 50 <= figures["coordinator_cpu_ms_per_half"] <= 200
    assert figures["workers_cpu_ms_per_half"] == 0
    assert figures["client_cpu_ms_per_half"] < figures["coordinator_cpu_ms_per_half"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert vistrit(cwd=tmp_path).returncode == 2
    assert vistrit("frobnicate", cwd=tmp_path).returncode == 2
    version = vistrit("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("vistrit ")
    for option in ("--prefetch", "--quick-prefetch"):  # a queue deeper than a worker takes
        run = vistrit("coordinator", "--bind", "127.0.0.1:0", option, "17", cwd=tmp_path)
        name = option[2:].replace("-", "_")
        assert run.returncode == 2 and f"{name} must be between 0 and 16" in run.stderr


def test_decode_reads_binary_frames_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "frames.vst").write_bytes(HEARTBEAT + vector("HeartbeatAck"))
    run = vistrit("decode", "--file", "frames.vst", cwd=tmp_path)
    assert run.returncode == 0 and "frame 2" in run.stdout and "0x04 = HeartbeatAck" in run.stdout
    missing = vistrit("decode", "--file", "nope.vst", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: cannot read nope.vst")


def test_an_own_address_that_does_not_resolve_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from vistrit import transport
    from vistrit.cli.common import UsageError
    from vistrit.cli.nodes import cluster_config

    def unknown(host: str) -> str:
        raise OSError(f"no address for {host}")

    monkeypatch.setattr(transport, "resolve", unknown)
    args = argparse.Namespace(
        id=1, peers="1@elsewhere:7000,2@127.0.0.1:7001", takeover=True, leader_timeout=0.5
    )
    with pytest.raises(UsageError, match="cannot resolve this coordinator's address elsewhere"):
        cluster_config(args)


def test_the_floor_ratio_and_the_cpu_time_of_a_process() -> None:
    from vistrit.bench import floor

    assert floor.ratio("scaling", {"speedup": 2.0}, {"bulk_mb_per_s": 1.0}) is None
    payload = floor.ratio("payload", {"mb_per_s": 50.0}, {"bulk_mb_per_s": 200.0})
    assert payload == "25% of bare loopback bandwidth"
    assert floor.ratio("throughput", {"tasks_per_s": 1.0}, {}) is None
    both = {"round_trip_p50_us": 50.0, "skeleton_round_trip_p50_us": 100.0}
    assert floor.ratio("latency", {"p50_us": 400.0}, both) == (
        "8.00 bare round trips per task; 4.00 skeleton round trips per task"
    )
    assert floor.ratio("latency", {"p50_us": 400.0}, {"round_trip_p50_us": 50.0}) == (
        "8.00 bare round trips per task"  # a floor without the skeleton: what it has
    )
    assert floor.cpu_seconds(os.getpid()) > 0
    assert floor.cpu_seconds(2**22 + 1) == 0.0  # past any pid_max: no such process


def children() -> set[int]:
    """This process's child processes (Linux ``/proc``)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    found.add(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_w2_s_skeleton_runs_its_round_trips_and_stops_its_two_helpers() -> None:
    from vistrit.bench.skeleton import skeleton

    before = children()
    figures = skeleton(round_trips=50, warm=5)
    assert figures["skeleton_round_trip_p50_us"] > 0
    assert children() == before


def test_bench_memory_measures_the_coordinators_resident_bytes_per_task(tmp_path: Path) -> None:
    run = vistrit("bench", "memory", "--repeats", "1", "--tasks", "1000", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert row["settings"]["tasks"] == 2000 and row["settings"]["remembered"] >= 5000
    assert row["figures"]["resident_mb"] > 0 and "first_burst_bytes_per_task" in row["figures"]


@pytest.mark.timeout(300)
def test_bench_peers_runs_the_same_workloads_on_dask_celery_and_rq(tmp_path: Path) -> None:
    from vistrit.bench import peers

    missing = peers.missing()
    if os.environ.get("VISTRIT_REQUIRE_PEERS"):  # set by .ci/run, which installs them all
        assert missing == {}
    if len(missing) == 3:
        run = vistrit("bench", "peers", cwd=tmp_path)
        assert run.returncode == 2 and "pip install" in run.stderr
        pytest.skip(f"no peer can run here, only the refusal was checked: {missing}")
    redis_before = _pids("-x", "redis-server")
    args = ("--tasks", "200", "--round-trips", "20", "--payload-tasks", "2", "--payload-mib", "1")
    run = vistrit("bench", "peers", "--repeats", "1", "--json", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in run.stdout.splitlines()]
    figures = row["figures"]
    expected = {
        "dask": {"w1_tasks_per_s", "w1_unbounded_tasks_per_s", "w2_p50_us", "w4_mb_per_s"},
        "celery": {"w1_tasks_per_s", "w2_p50_us", "w4_mb_per_s"},
        "rq": {"w1_tasks_per_s", "w2_p50_us", "w4_mb_per_s"},
    }
    ran = {
        f"{peer}_{key}" for peer, keys in expected.items() if peer not in missing for key in keys
    }
    assert set(figures) == ran
    assert row["settings"]["skipped"] == missing
    assert all(value > 0 for value in figures.values())
    assert _pids("-f", "vistrit-bench") == set(), "a peer's worker outlived the bench"
    assert _pids("-x", "redis-server") == redis_before, "the bench's Redis outlived it"


def _pids(*pgrep: str) -> set[str]:
    return set(subprocess.run(["pgrep", *pgrep], capture_output=True, text=True).stdout.split())


SIGNAL_ON_ANOTHER_THREAD = """
import signal, sys, threading, time
from vistrit.cli.common import until_signalled, wait_for

stop = until_signalled()
ready = threading.Event()
def bystander():
    ready.set()
    time.sleep(30)
other = threading.Thread(target=bystander, daemon=True)
other.start()
ready.wait()
signal.pthread_kill(other.ident, signal.SIGTERM)  # the kernel may pick any thread
wait_for(stop)
print("stopped")
"""


def test_a_node_stops_on_a_signal_another_thread_received(tmp_path: Path) -> None:
    """The main thread must not sleep for good while it waits to be stopped: a SIGTERM
    taken by another thread is handled only when the main thread runs Python code."""
    import sys

    run = subprocess.run([sys.executable, "-c", SIGNAL_ON_ANOTHER_THREAD], capture_output=True,
                         text=True, timeout=20, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "stopped", run.stderr


NODE_COLLECTOR = """
import gc, sys
from vistrit import defaults
from vistrit.cli import main, nodes

seen = []
nodes.wait_for = lambda stop: seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
before = gc.get_threshold()[0]
code = main(["coordinator", "--bind", "127.0.0.1:0"])
print(before, *seen[0], defaults.NODE_GC_THRESHOLD)
"""


def test_a_node_process_collects_its_youngest_objects_less_often(tmp_path: Path) -> None:
    """A coordinator started from the command line raises the collector's first threshold
    and freezes what it made at start; a process that only imports vistrit (a client's)
    keeps the interpreter's defaults."""
    import sys

    run = subprocess.run([sys.executable, "-c", NODE_COLLECTOR], capture_output=True,
                         text=True, timeout=30, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    before, threshold, frozen, wanted = map(int, run.stdout.split()[-4:])
    assert before == 700  # the interpreter's default: importing vistrit changes nothing
    assert threshold == wanted > before
    assert frozen > 1_000
