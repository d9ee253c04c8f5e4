"""The scaling curves of ``python -m vistrit bench curves``: how the figures move with size.

* **tasks**: W1 with 1,000, 10,000 and 100,000 tasks on one cluster, one after the other:
  tasks per second, the coordinator's CPU per task, and its resident memory per task
  (every task stays remembered, within the retention);
* **workers**: W1 (10,000 tasks) on 1, 2, 4, 8 and 16 one-slot workers: tasks per second
  and the coordinator's CPU per task (what placement costs as workers are added);
* **prefetch**: W1 (10,000 tasks, 2 one-slot workers) with each worker's queue held at
  0, 1, 2, 4 and 16 tasks (``--prefetch`` and ``--quick-prefetch`` both at that depth; by
  default a worker queues 1, and 4 once its runs are quick): tasks per second and the
  coordinator's CPU per task (what a worker's queue buys short tasks; its price is in
  the ordering, :doc:`scheduling`);
* **clients**: 1, 4 and 16 clients at once, each with its own connection, doing
  sequential submit-and-wait round trips on 2 workers of 4 slots: round trips per second
  in all, p50 and p99;
* **backlog**: 100,000 tasks submitted with no worker yet: how fast they are accepted
  (until the coordinator has acknowledged every one), its memory per waiting task, then
  how long 2 workers take to drain them (from the moment the first is started).

Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from vistrit import defaults
from vistrit.bench.base import (
    WORKER_OPTIONS,
    Figures,
    local_cluster,
    start_cluster,
    w1_seconds,
)
from vistrit.bench.base import (
    round_trips as timed_round_trips,
)
from vistrit.bench.floor import cpu_seconds, resident_bytes
from vistrit.client import VistritClient
from vistrit.demo import ProcessGroup, wait_for_workers

TASK_COUNTS = (1_000, 10_000, 100_000)
WORKER_COUNTS = (1, 2, 4, 8, 16)
PREFETCH_DEPTHS = (0, 1, 2, 4, 16)
CLIENT_COUNTS = (1, 4, 16)
BACKLOG = 100_000


def tasks_curve(counts: tuple[int, ...] = TASK_COUNTS, workers: int = 2) -> dict[str, float]:
    """W1 at each size in *counts*, on one cluster: rate, CPU and memory per task."""
    figures = {}
    pids: list[int] = []
    with local_cluster(workers, pids=pids) as client:
        w1_seconds(client, 1_000)
        for count in counts:
            memory, cpu = resident_bytes(pids[0]), cpu_seconds(pids[0])
            elapsed = w1_seconds(client, count, warm=False)
            time.sleep(2 * defaults.TICK_INTERVAL)  # the next tick packs what finished
            figures[f"tasks_{count}_per_s"] = count / elapsed
            figures[f"tasks_{count}_cpu_us"] = (cpu_seconds(pids[0]) - cpu) / count * 1e6
            figures[f"tasks_{count}_bytes"] = (resident_bytes(pids[0]) - memory) / count
    return figures


def workers_curve(counts: tuple[int, ...] = WORKER_COUNTS, tasks: int = 10_000) -> dict[str, float]:
    """W1 on each number of one-slot workers in *counts*: rate and CPU per task."""
    figures = {}
    for count in counts:
        pids: list[int] = []
        with local_cluster(count, pids=pids) as client:
            w1_seconds(client, 1_000)
            cpu = cpu_seconds(pids[0])
            figures[f"workers_{count}_per_s"] = tasks / w1_seconds(client, tasks, warm=False)
            figures[f"workers_{count}_cpu_us"] = (cpu_seconds(pids[0]) - cpu) / tasks * 1e6
    return figures


def prefetch_curve(
    depths: tuple[int, ...] = PREFETCH_DEPTHS, tasks: int = 10_000, workers: int = 2
) -> dict[str, float]:
    """W1 with each worker's queue held at each depth in *depths*, quick runs or not:
    rate and CPU per task."""
    figures = {}
    for depth in depths:
        pids: list[int] = []
        options = ("--prefetch", str(depth), "--quick-prefetch", str(depth))
        with local_cluster(workers, pids=pids, coordinator_args=options) as client:
            w1_seconds(client, 1_000)
            cpu = cpu_seconds(pids[0])
            figures[f"prefetch_{depth}_per_s"] = tasks / w1_seconds(client, tasks, warm=False)
            figures[f"prefetch_{depth}_cpu_us"] = (cpu_seconds(pids[0]) - cpu) / tasks * 1e6
    return figures


def clients_curve(
    counts: tuple[int, ...] = CLIENT_COUNTS, round_trips: int = 1_000
) -> dict[str, float]:
    """*round_trips* sequential round trips shared by each number of clients in *counts*,
    all at once: round trips per second in all, p50 and p99 (µs)."""
    figures = {}
    with local_cluster(2, slots=4) as first:
        address = ",".join(f"{host}:{port}" for host, port in first.addresses)
        for count in counts:
            clients = [VistritClient(address) for _ in range(count)]
            samples: list[float] = []
            each = max(20, round_trips // count)
            threads = [
                threading.Thread(target=_round_trips, args=(c, each, samples)) for c in clients
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            for client in clients:
                client.close()
            samples.sort()
            figures[f"clients_{count}_round_trips_per_s"] = len(samples) / elapsed
            figures[f"clients_{count}_p50_us"] = statistics.median(samples) * 1e6
            figures[f"clients_{count}_p99_us"] = samples[int(len(samples) * 0.99) - 1] * 1e6
    return figures


def _round_trips(client: VistritClient, count: int, samples: list[float]) -> None:
    """*count* sequential round trips (after 10 to warm up), their times added to *samples*
    (``list.extend`` is atomic: the clients' threads share the list)."""
    samples.extend(timed_round_trips(client, count, warm=10))


def backlog(tasks: int = BACKLOG, workers: int = 2) -> dict[str, float]:
    """*tasks* submitted with no worker; then *workers* start and drain them."""
    group = ProcessGroup()
    with tempfile.TemporaryDirectory() as directory:
        try:
            address, started = start_cluster(group, 1, Path(directory), ())
            pid = started[1].pid
            with VistritClient(address) as client:
                client.cluster_status()  # connected, and the coordinator warm
                memory = resident_bytes(pid)
                begun = time.perf_counter()
                futures = [client.submit("echo", b"0123456789abcdef") for _ in range(tasks)]
                pending = client.cluster_status().pending_tasks  # answered after every ack
                accepted = time.perf_counter() - begun
                if pending != tasks:
                    raise RuntimeError(f"{pending} of {tasks} tasks are pending")
                held = (resident_bytes(pid) - memory) / tasks
                begun = time.perf_counter()
                for number in range(workers):
                    group.start_worker(address, f"bench-{number + 1}", *WORKER_OPTIONS)
                wait_for_workers(client, workers)
                client.gather(futures, 600)
                drained = time.perf_counter() - begun
        finally:
            group.stop_all()
    return {
        "backlog_submitted_per_s": tasks / accepted,
        "backlog_bytes_per_task": held,
        "backlog_drain_s": drained,
        "backlog_drained_per_s": tasks / drained,
    }


def curves(tasks: int = 10_000, round_trips: int = 1_000) -> Figures:
    """Every curve, in one set of figures. The sizes follow *tasks* (``--tasks``; the
    defaults above at 10,000): a tenth of it, it, and ten times it; the backlog ten times."""
    counts = tuple(sorted({max(1, tasks // 10), tasks, tasks * 10}))
    figures = {
        **tasks_curve(counts),
        **workers_curve(tasks=tasks),
        **prefetch_curve(tasks=tasks),
        **clients_curve(round_trips=round_trips),
        **backlog(tasks * 10),
    }
    settings = {"tasks": list(counts), "workers": list(WORKER_COUNTS),
                "prefetch": list(PREFETCH_DEPTHS), "clients": list(CLIENT_COUNTS),
                "backlog": tasks * 10}  # fmt: skip
    return Figures("scaling curves", figures, settings)
