"""What every cluster workload of ``python -m vistrit bench`` stands on: a cluster of real
processes on 127.0.0.1 (:func:`local_cluster`), the W1 run (:func:`w1_seconds`), and the
:class:`Figures` a workload returns. The workloads: :mod:`vistrit.bench.cluster` and
:mod:`vistrit.bench.curves`.

Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vistrit.bench.floor import cpu_seconds
from vistrit.client import VistritClient
from vistrit.demo import ProcessGroup, wait_for_workers
from vistrit.transport import TLSConfig

#: Options for every benchmark worker: the benchmark's task functions.
WORKER_OPTIONS = ("--tasks", "vistrit.bench.tasks")


@dataclass(frozen=True)
class Figures:
    """One workload's figures: named values and how many runs they are the median of."""

    workload: str
    figures: dict[str, float]
    settings: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The figures as plain data, for ``--json``."""
        return asdict(self)


def tls_args(tls: TLSConfig | None) -> tuple[str, ...]:
    """The command-line options that give a node *tls*."""
    if tls is None:
        return ()
    return ("--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--tls-ca", str(tls.ca))


@contextmanager
def local_cluster(
    workers: int,
    slots: int = 1,
    coordinator_args: tuple[str, ...] = (),
    coordinators: int = 1,
    tls: TLSConfig | None = None,
    pids: list[int] | None = None,
    urls: list[str] | None = None,
    groups: list[ProcessGroup] | None = None,
    worker_pids: list[int] | None = None,
) -> Iterator[VistritClient]:
    """A coordinator (or a cluster of *coordinators*, each with a journal) and *workers*
    worker processes on 127.0.0.1, and a client to them; every connection TLS with *tls*.
    The coordinators' process ids are added to *pids*, if given (in the order of their
    ids, 1 first), the workers' to *worker_pids*; with *urls*, the coordinator serves its
    dashboard, whose URL is added there; with *groups*, the processes' group is, so that
    the caller may start more workers."""
    if urls is not None:
        coordinator_args = (*coordinator_args, "--dashboard", "127.0.0.1:0")
    group = ProcessGroup()
    if groups is not None:
        groups.append(group)
    coordinator_args = (*coordinator_args, *tls_args(tls))
    with tempfile.TemporaryDirectory() as directory:
        try:
            addresses, started = start_cluster(
                group, coordinators, Path(directory), coordinator_args
            )
            if pids is not None:
                pids += [process.pid for process in started.values()]
            if urls is not None:
                urls.append(group.first_line(started[1], "dashboard").rsplit(" ", 1)[-1])
            for number in range(workers):
                options = ("--slots", str(slots), *WORKER_OPTIONS, *tls_args(tls))
                worker = group.start_worker(addresses, f"bench-{number + 1}", *options)
                if worker_pids is not None:
                    worker_pids.append(worker.pid)
            with VistritClient(addresses, tls=tls) as client:
                wait_for_workers(client, workers)
                yield client
        finally:
            group.stop_all()


def start_cluster(
    group: ProcessGroup, coordinators: int, directory: Path, coordinator_args: tuple[str, ...]
) -> tuple[str, dict[int, subprocess.Popen[str]]]:
    """One coordinator, or several (ids 1 to *coordinators*, each journaled in
    *directory*). Returns the addresses to give workers and clients, and the processes by
    id."""
    if coordinators == 1:
        process, address = group.start_coordinator(*coordinator_args)
        return address, {1: process}
    started = group.start_coordinators(
        coordinators, *coordinator_args, log_dir=directory, data=True
    )
    addresses = ",".join(address for _, address in started.values())
    return addresses, {rank: process for rank, (process, _) in started.items()}


class CpuMeter:
    """The CPU time (user + system, from ``/proc``) that each role's processes (say
    ``coordinator=[pid]``, ``workers=[pid, pid]``: each role summed over its processes) and
    this process (the ``client``, every thread) use between :meth:`start` and :meth:`per`."""

    def __init__(self, **roles: list[int]) -> None:
        self.roles = roles
        self.started: dict[str, float] = {}

    def used(self) -> dict[str, float]:
        """Each role's CPU seconds so far."""
        used = {role: sum(map(cpu_seconds, pids)) for role, pids in self.roles.items()}
        return {**used, "client": time.process_time()}

    def start(self) -> None:
        """Start counting from now."""
        self.started = self.used()

    def per(self, count: int, unit: float, name: str) -> dict[str, float]:
        """Each role's CPU since :meth:`start`, divided by *count* and by *unit* seconds:
        ``{"<role>_cpu_<name>": ...}`` for each role given, and ``"client_cpu_<name>"``."""
        used = self.used()
        return {
            f"{role}_cpu_{name}": (used[role] - self.started[role]) / count / unit for role in used
        }


def w1_seconds(
    client: VistritClient, tasks: int, warm: bool = True, batched: bool = False
) -> float:
    """The W1 workload on a running cluster: *tasks* 16-byte echo tasks submitted at once
    (after a warm-up, unless done already), until every result is back: a ``submit`` each,
    or, *batched*, one ``map`` (in ``TaskSubmitBatch`` es, as Dask's W1 is one ``map``)."""
    if warm:
        client.gather(client.map("echo", [b"warm"] * 100), 60)
    started = time.perf_counter()
    if batched:
        futures = client.map("echo", [b"0123456789abcdef"] * tasks)
    else:
        futures = [client.submit("echo", b"0123456789abcdef") for _ in range(tasks)]
    client.gather(futures, 600)
    return time.perf_counter() - started


def round_trips(client: VistritClient, count: int, warm: int = 50) -> list[float]:
    """*count* sequential submit-and-wait round trips of a 16-byte echo (after *warm* to
    warm up): each one's time, in seconds (W2, and the clients curve)."""
    for _ in range(warm):
        client.submit("echo", b"warm").result(30)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.submit("echo", b"0123456789abcdef").result(30)
        samples.append(time.perf_counter() - started)
    return samples
