"""The cluster workloads of ``python -m vistrit bench``, against real processes.

Each workload starts a coordinator and workers as separate processes (``python -m vistrit
coordinator``/``worker``, with ``--tasks vistrit.bench.tasks``), drives them from a
:class:`~vistrit.client.VistritClient` in this process, and stops them:

* **W1 throughput** - N echo tasks of 16 bytes submitted at once by one client, on 2
  workers of 1 slot; tasks per second until every result is back.
* **W2 latency** - N sequential submit-and-wait round trips on 1 worker; p50 and p99, and
  the CPU a round trip costs each process.
* **W3 CPU scaling** - 32 tasks of about 50 ms of pure-Python CPU, on 1 worker and then on
  2; the speedup (time on 1 / time on 2).
* **W4 payload** - 20 echo tasks of 8 MiB; megabytes per second of task data sent out and
  back, and the CPU a call costs each process.

More, on request: **memory** (the coordinator's resident memory per remembered task, over
two bursts of twice ``--tasks`` finished echo tasks), **handshake** (what joining costs: a v4
authenticated join against a v1 unauthenticated one), **detection** (how soon a killed or
frozen worker's task runs again), **journal** (what ``--data-dir`` costs W1 and W2 in each
``--fsync`` mode), **failover** (three coordinators; the leader is killed mid-run: the
time to the first task the new leader accepts, and to the end of the interrupted run),
**replication** (W1 with one coordinator and with three, each with a journal, what the
three cost in per cent, and the CPU a task of each process: the leader, its followers),
**dashboard** (W1 without the dashboard, and with it open: :mod:`vistrit.bench.poller`),
**curves** (how the figures move with tasks, workers, clients and a backlog:
:mod:`vistrit.bench.curves`), **instructions** (the coordinator's instructions per W1
task and per W2 round trip, counted by valgrind where it is installed:
:mod:`vistrit.bench.instructions`) and **peers** (W1, W2 and W4 on Dask, where it is
installed: :mod:`vistrit.bench.peers`).

Nothing prints; figures are returned. Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import signal
import statistics
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

from vistrit import defaults, leader
from vistrit.addresses import parse_address
from vistrit.bench import curves, instructions, peers
from vistrit.bench.base import (
    WORKER_OPTIONS,
    CpuMeter,
    Figures,
    local_cluster,
    start_cluster,
    tls_args,
    w1_seconds,
)
from vistrit.bench.base import (
    round_trips as timed_round_trips,
)
from vistrit.bench.floor import cpu_seconds, resident_bytes
from vistrit.bench.poller import Poller
from vistrit.client import VistritClient
from vistrit.credentials import Credentials, default_path
from vistrit.demo import ProcessGroup, wait_for_workers
from vistrit.leader import NodeAuth
from vistrit.logic.auth import AUTH_VERSION
from vistrit.protocol import messages as m
from vistrit.protocol.types import NodeType, SocketAddr, introduce
from vistrit.transport import TLSConfig, connect

#: Loop turns of bench-spin that take about 50 ms here (calibrated at start).
SPIN_SECONDS = 0.05


def throughput(tasks: int = 10_000, workers: int = 2, tls: TLSConfig | None = None) -> Figures:
    """W1: many small echo tasks from one client, on one-slot workers; tasks per second,
    and the coordinator's CPU time per task (user + system, from ``/proc``): submitted one
    by one, then (``map_``) as one ``map``, in batches."""
    pids: list[int] = []
    figures = {}
    with local_cluster(workers, tls=tls, pids=pids) as client:
        client.gather(client.map("echo", [b"warm"] * 100), 60)
        for prefix, batched in (("", False), ("map_", True)):
            cpu = cpu_seconds(pids[0])
            elapsed = w1_seconds(client, tasks, warm=False, batched=batched)
            cpu = cpu_seconds(pids[0]) - cpu
            figures[f"{prefix}tasks_per_s"] = tasks / elapsed
            figures[f"{prefix}coordinator_cpu_us_per_task"] = cpu / tasks * 1e6
    return Figures(
        "W1 throughput",
        figures,
        {"tasks": tasks, "workers": workers, "slots": 1, "data_bytes": 16, "tls": bool(tls)},
    )


def memory(tasks: int = 20_000, workers: int = 2, large: int = 10) -> Figures:
    """What the coordinator holds per remembered task: its resident memory before and after
    two bursts of *tasks* 16-byte echo tasks, all finished and kept (within the retention);
    then what it still holds after *large* echo calls of 8 MiB, one after another, each
    collected (its client confirms it has the result, so the coordinator lets the payload go).

    A burst's tasks are all waiting at once, each a whole record, until the tick after they
    finish packs them (:mod:`vistrit.logic.packed`); the memory they leave free stays with
    the allocator, which the next burst reuses. So the second burst is what each remembered
    task costs (``bytes_per_task``), and the first, beside it, is that plus what one burst's
    peak left (``first_burst_bytes_per_task``)."""
    pids: list[int] = []
    data = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    with local_cluster(workers, pids=pids) as client:
        w1_seconds(client, 1_000)  # warm: buffers, caches and the first allocations
        resident = [resident_bytes(pids[0])]
        for _ in range(2):
            w1_seconds(client, tasks, warm=False)
            time.sleep(2 * defaults.TICK_INTERVAL)  # the next tick packs what finished
            resident.append(resident_bytes(pids[0]))
        before, first, after = resident
        remembered = client.cluster_status().completed_tasks
        for _ in range(large):
            if client.submit("echo", data).result(120) != data:
                raise RuntimeError("an 8 MiB echo came back changed")
        client.cluster_status()  # a round trip: the last release has been taken
        held = resident_bytes(pids[0])
    return Figures(
        "memory",
        {
            "bytes_per_task": (after - first) / tasks,
            "first_burst_bytes_per_task": (first - before) / tasks,
            "resident_mb": after / 1e6,
            "held_after_8mib_calls_mb": (held - after) / 1e6,
        },
        {
            "tasks": tasks,
            "bursts": 2,
            "remembered": remembered,
            "data_bytes": 16,
            "large_calls": large,
        },
    )


def latency(round_trips: int = 1_000, tls: TLSConfig | None = None) -> Figures:
    """W2: sequential submit-and-wait round trips on one worker; p50, p99 and mean, and
    the CPU time a round trip costs the coordinator, the worker and the client."""
    pids: list[int] = []
    worker_pids: list[int] = []
    with local_cluster(1, tls=tls, pids=pids, worker_pids=worker_pids) as client:
        timed_round_trips(client, 0)  # the warm-up alone
        meter = CpuMeter(coordinator=pids, workers=worker_pids)
        meter.start()
        samples = sorted(timed_round_trips(client, round_trips, warm=0))
        cpu = meter.per(round_trips, 1e-6, "us_per_round_trip")
    return Figures(
        "W2 latency",
        {
            "p50_us": samples[len(samples) // 2] * 1e6,
            "p99_us": samples[int(len(samples) * 0.99) - 1] * 1e6,
            "mean_us": statistics.fmean(samples) * 1e6,
            **cpu,
        },
        {"round_trips": round_trips, "workers": 1, "tls": bool(tls)},
    )


def handshake(joins: int = 500, tls: TLSConfig | None = None) -> Figures:
    """What joining costs: a new connection, its handshake (v4: with the challenge-response;
    v1: without, as an older node joins a coordinator that admits it), and its close, one
    after another; the median of each, and the difference: what authentication costs."""
    group = ProcessGroup()
    try:
        _, address = group.start_coordinator("--allow-unauthenticated", *tls_args(tls))
        target = parse_address(address)
        auth = NodeAuth(*Credentials.load(default_path()).own(NodeType.Worker))
        medians = {}
        for version in (AUTH_VERSION, 1):
            samples = []
            for _ in range(joins):
                node = introduce(uuid.uuid4(), NodeType.Worker, SocketAddr("127.0.0.1", 0), "b", 0)
                started = time.perf_counter()
                conn = connect(target, tls=tls)
                leader.handshake(
                    conn, m.Handshake(node_info=node, protocol_version=version), 10, auth
                )
                conn.close()
                samples.append(time.perf_counter() - started)
            medians[version] = statistics.median(samples) * 1e6
    finally:
        group.stop_all()
    return Figures(
        "handshake",
        {
            "v4_join_us": medians[AUTH_VERSION],
            "v1_join_us": medians[1],
            "auth_us": medians[AUTH_VERSION] - medians[1],
        },
        {"joins": joins, "tls": bool(tls)},
    )


def calibrate_spin(seconds: float = SPIN_SECONDS) -> int:
    """Loop turns of bench-spin that take about *seconds* on this machine."""
    from vistrit.bench.tasks import spin

    turns = 10_000
    while True:
        started = time.perf_counter()
        spin(str(turns).encode())
        elapsed = time.perf_counter() - started
        if elapsed > 0.01:
            return max(1, int(turns * seconds / elapsed))
        turns *= 4


def scaling(tasks: int = 32) -> Figures:
    """W3: CPU-bound tasks on one worker, then on two; the speedup."""
    turns = str(calibrate_spin()).encode()
    times = {}
    for workers in (1, 2):
        with local_cluster(workers) as client:
            client.gather(client.map("bench-spin", [b"1000"] * 4), 60)
            started = time.perf_counter()
            client.gather(client.map("bench-spin", [turns] * tasks), 600)
            times[workers] = time.perf_counter() - started
    return Figures(
        "W3 CPU scaling",
        {
            "seconds_1_worker": times[1],
            "seconds_2_workers": times[2],
            "speedup": times[1] / times[2],
        },
        {"tasks": tasks, "task_seconds": SPIN_SECONDS},
    )


def payload(tasks: int = 20, size: int = 8 * 1024 * 1024, workers: int = 2) -> Figures:
    """W4: echo tasks of large payloads; megabytes per second, and the CPU time a call
    costs the coordinator, the workers (together) and the client."""
    data = bytes(range(256)) * (size // 256)
    pids: list[int] = []
    worker_pids: list[int] = []
    with local_cluster(workers, pids=pids, worker_pids=worker_pids) as client:
        client.submit("echo", data).result(60)
        meter = CpuMeter(coordinator=pids, workers=worker_pids)
        meter.start()
        started = time.perf_counter()
        futures = [client.submit("echo", data) for _ in range(tasks)]
        results = client.gather(futures, 600)
        elapsed = time.perf_counter() - started
        cpu = meter.per(tasks, 1e-3, "ms_per_call")
    if not all(len(r) == size for r in results):
        raise RuntimeError("an echo of a large payload came back with the wrong size")
    return Figures(
        "W4 payload",
        {"mb_per_s": tasks * size / elapsed / 1e6, "seconds": elapsed, **cpu},
        {"tasks": tasks, "bytes": size, "workers": workers},
    )


def detection(how: str) -> float:
    """Seconds from killing (SIGKILL) or freezing (SIGSTOP) the worker that runs a task to
    the moment the task is running again on another worker."""
    group = ProcessGroup()
    try:
        _, address = group.start_coordinator()
        doomed = group.start_worker(address, "doomed", "--slots", "1", *WORKER_OPTIONS)
        with VistritClient(address) as client:
            wait_for_workers(client, 1)
            (doomed_worker,) = (w.id for w in client.workers())
            future = client.submit("bench-sleep", b"1.0", retries=1)
            while client.status(future.task_id).state != "Running":
                time.sleep(0.005)
            group.start_worker(address, "rescuer", "--slots", "1", *WORKER_OPTIONS)
            wait_for_workers(client, 2)
            started = time.perf_counter()
            doomed.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
            while True:
                info = client.status(future.task_id)
                if info.state == "Running" and info.worker != doomed_worker:
                    break
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            future.result(30)
        if how == "stop":
            doomed.send_signal(signal.SIGCONT)
        return elapsed
    finally:
        group.stop_all()


def failure_detection(repeats: int = 3) -> Figures:
    """How long until the task of a killed, or a frozen, worker runs elsewhere."""
    kills = [detection("kill") for _ in range(repeats)]
    stops = [detection("stop") for _ in range(repeats)]
    return Figures(
        "failure detection",
        {
            "killed_worker_requeue_s": statistics.median(kills),
            "frozen_worker_requeue_s": statistics.median(stops),
        },
        {"heartbeat_timeout_s": 5.0, "repeats": repeats},
    )


def journal_cost(tasks: int = 5_000, workers: int = 2, round_trips: int = 1_000) -> Figures:
    """W1 throughput, then W2's median round trip on the same cluster, without a journal and
    with one in each fsync mode (with ``always``, every W2 round trip waits for two
    ``fsync`` s in turn: its submission's and its outcome's)."""
    figures = {}
    for mode in ("none", "never", "batch", "always"):
        with tempfile.TemporaryDirectory() as directory:
            args = () if mode == "none" else ("--data-dir", directory, "--fsync", mode)
            with local_cluster(workers, coordinator_args=args) as client:
                figures[f"tasks_per_s_{mode}"] = tasks / w1_seconds(client, tasks)
                samples = timed_round_trips(client, round_trips)
                figures[f"p50_us_{mode}"] = statistics.median(samples) * 1e6
    settings: dict[str, object] = {"tasks": tasks, "workers": workers, "round_trips": round_trips}
    return Figures("journal cost", figures, settings)


def failover_once(tasks: int = 2_000) -> tuple[float, float]:
    """Three coordinators (journals on disk), two workers, a client running *tasks* echo
    tasks; SIGKILL the leader once a tenth are done. Returns the seconds from the kill to
    the first task accepted by the new leader, and to the end of the interrupted run."""
    group = ProcessGroup()
    with tempfile.TemporaryDirectory() as directory:
        try:
            addresses, processes = start_cluster(group, 3, Path(directory), ())
            for number in (1, 2):
                group.start_worker(addresses, f"bench-{number}", "--slots", "2", *WORKER_OPTIONS)
            with VistritClient(addresses) as client, VistritClient(addresses) as probe:
                wait_for_workers(client, 2)
                leader = client.cluster_status().leader_id
                assert leader is not None
                futures = [client.submit("echo", f"task {n}") for n in range(tasks)]
                while sum(f.done() for f in futures) < tasks // 10:
                    time.sleep(0.001)
                killed = time.perf_counter()
                processes[leader.int].send_signal(signal.SIGKILL)
                first = probe.submit("echo", "probe")
                probe.status(first.task_id)  # answered once the new leader has accepted it
                accepted = time.perf_counter() - killed
                results = client.gather(futures, 120)
                completed = time.perf_counter() - killed
            if results != [f"task {n}" for n in range(tasks)]:
                raise RuntimeError("the interrupted run came back with wrong results")
            return accepted, completed
        finally:
            group.stop_all()


def replication_cost(tasks: int = 5_000, workers: int = 2) -> Figures:
    """W1 throughput with one coordinator and with three (each with a journal, fsync
    always): what waiting for the followers' copies costs, in per cent of the first (each
    repeat's own, so that the median is of the costs, not of the two rates apart). And
    where the CPU goes, in µs a task: the coordinator alone, or the leader and its two
    followers together; the workers and the client, in each run."""
    figures: dict[str, float] = {}
    for count in (1, 3):
        pids: list[int] = []
        worker_pids: list[int] = []
        with tempfile.TemporaryDirectory() as directory:
            # one coordinator journals here; three, each in the cluster's own directory
            journal = ("--data-dir", directory) if count == 1 else ()
            with local_cluster(
                workers,
                coordinator_args=journal,
                coordinators=count,
                pids=pids,
                worker_pids=worker_pids,
            ) as client:
                w1_seconds(client, 0)  # the warm-up alone
                meter = CpuMeter(**coordinator_roles(client, pids), workers=worker_pids)
                meter.start()
                rate = f"tasks_per_s_{count}_coordinator" + ("s" if count > 1 else "")
                figures[rate] = tasks / w1_seconds(client, tasks, warm=False)
                figures.update(meter.per(tasks, 1e-6, f"us_per_task_{count}"))
    figures["cost_percent"] = 100 * (
        1 - figures["tasks_per_s_3_coordinators"] / figures["tasks_per_s_1_coordinator"]
    )
    return Figures("replication cost", figures, {"tasks": tasks, "workers": workers})


def coordinator_roles(client: VistritClient, pids: list[int]) -> dict[str, list[int]]:
    """A lone coordinator's process as ``coordinator``; of a cluster's (*pids* in the order
    of their ids), the one *client* is told leads as ``leader``, the others as
    ``followers``."""
    if len(pids) == 1:
        return {"coordinator": pids}
    leader = client.cluster_status().leader_id
    if leader is None or not 1 <= leader.int <= len(pids):
        raise RuntimeError(f"no leader among coordinators 1 to {len(pids)}: {leader}")
    followers = [pid for rank, pid in enumerate(pids, 1) if rank != leader.int]
    return {"leader": [pids[leader.int - 1]], "followers": followers}


def dashboard_cost(tasks: int = 10_000, workers: int = 2) -> Figures:
    """W1 without a dashboard, then with the dashboard served and open (the cluster page and
    the task stream each polled once a second: :mod:`vistrit.bench.poller`)."""
    figures = {}
    for served in (False, True):
        pids: list[int] = []
        urls: list[str] | None = [] if served else None
        with local_cluster(workers, pids=pids, urls=urls) as client:
            w1_seconds(client, 1_000)
            cpu = cpu_seconds(pids[0])
            with Poller(urls[0]) if urls else nullcontext():
                elapsed = w1_seconds(client, tasks, warm=False)
            key = "with" if served else "without"
            figures[f"tasks_per_s_{key}"] = tasks / elapsed
            figures[f"coordinator_cpu_us_per_task_{key}"] = (
                (cpu_seconds(pids[0]) - cpu) / tasks * 1e6
            )
    figures["cost_percent"] = 100 * (
        1 - figures["tasks_per_s_with"] / figures["tasks_per_s_without"]
    )
    return Figures(
        "dashboard cost", figures, {"tasks": tasks, "workers": workers, "polls_per_s": 2}
    )


def failover(repeats: int = 3, tasks: int = 2_000) -> Figures:
    """Three coordinators, the leader killed mid-run: time to the new leader's first task."""
    runs = [failover_once(tasks) for _ in range(repeats)]
    return Figures(
        "failover",
        {
            "first_accepted_s": statistics.median(a for a, _ in runs),
            "run_completed_s": statistics.median(c for _, c in runs),
        },
        {"coordinators": 3, "tasks": tasks, "repeats": repeats},
    )


WORKLOADS = ("throughput", "latency", "scaling", "payload")
MORE_WORKLOADS = (
    "detection", "journal", "failover", "replication", "handshake", "memory", "peers",
    "dashboard", "curves", "instructions",
)  # fmt: skip


def run(
    workload: str,
    *,
    repeats: int = 3,
    workers: int = 2,
    tasks: int = 10_000,
    round_trips: int = 1_000,
    cpu_tasks: int = 32,
    payload_tasks: int = 20,
    payload_bytes: int = 8 * 1024 * 1024,
    tls: TLSConfig | None = None,
) -> Figures:
    """Run one workload *repeats* times; each figure is the median of the runs. With
    *tls*, W1, W2 and handshake run over TLS."""
    runs = []
    for _ in range(repeats):
        if workload == "throughput":
            runs.append(throughput(tasks, workers, tls))
        elif workload == "latency":
            runs.append(latency(round_trips, tls))
        elif workload == "handshake":
            runs.append(handshake(max(50, round_trips // 2), tls))
        elif workload == "scaling":
            runs.append(scaling(cpu_tasks))
        elif workload == "payload":
            runs.append(payload(payload_tasks, payload_bytes, workers))
        elif workload == "detection":
            return failure_detection(repeats)
        elif workload == "failover":
            return failover(repeats, min(tasks, 2_000))
        elif workload == "replication":
            runs.append(replication_cost(min(tasks, 5_000), workers))
        elif workload == "curves":
            runs.append(curves.curves(tasks, round_trips))
        elif workload == "dashboard":
            runs.append(dashboard_cost(tasks, workers))
        elif workload == "journal":
            runs.append(journal_cost(min(tasks, 5_000), workers, round_trips))
        elif workload == "memory":
            runs.append(memory(max(tasks, 1_000) * 2, workers))
        elif workload == "instructions":
            trips = min(round_trips, 200)
            runs.append(instructions.instructions(min(tasks, 2_000), trips, workers))
        elif workload == "peers":
            sizes = dict(tasks=tasks, round_trips=round_trips, payload_tasks=payload_tasks)
            runs.append(peers.run(sizes, payload_bytes))
        else:
            raise ValueError(f"unknown workload {workload!r}")
    medians = {key: statistics.median(r.figures[key] for r in runs) for key in runs[0].figures}
    return Figures(runs[0].workload, medians, {**runs[0].settings, "repeats": repeats})
