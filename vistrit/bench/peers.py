"""The same workloads on Dask, Celery and RQ, side by side with Vistrit's, in this run.

``python -m vistrit bench peers`` runs W1 (small tasks at once), W2 (sequential round
trips) and W4 (8 MiB payloads) on every peer that can be had here (:func:`run`): Celery
and RQ as :mod:`vistrit.bench.queues` sets them up, and Dask on a cluster of two worker
processes of one thread each, on 127.0.0.1, as the cluster workloads run them on
Vistrit: the same counts, the same data, a function that returns its argument. W1 is run
twice: with Dask's default ``worker-saturation`` and with it unbounded (Dask then sends
every task to the workers at once, as Vistrit's prefetch does). The peers are optional:
this workload needs one of them installed (``pip install 'dask[distributed]'``, or ``pip
install celery rq`` with Debian's ``redis-server``), the rest of ``bench`` none.

Nothing prints; figures are returned. Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import importlib
import statistics
import time
from typing import Any

from vistrit.bench import queues
from vistrit.bench.base import Figures
from vistrit.bench.tasks import echo

HOW_TO_INSTALL = "pip install 'dask[distributed]', or pip install celery rq and redis-server"


def missing() -> dict[str, str]:
    """Each peer that cannot run here, and why."""
    why = {name: queues.missing(name) for name in ("celery", "rq")}
    try:
        importlib.import_module("distributed")
    except ImportError:
        why["dask"] = "the 'distributed' package is not installed (pip install 'dask[distributed]')"
    return {name: reason for name, reason in why.items() if reason is not None}


def available() -> bool:
    """Whether at least one peer can run here."""
    return len(missing()) < 3


def run(sizes: dict[str, int], payload_bytes: int) -> Figures:
    """Every peer that can run here, on the same sizes; its figures named ``PEER_FIGURE``."""
    skipped = missing()
    figures: dict[str, float] = {}
    for name, workloads in (("dask", dask), ("celery", queues.celery), ("rq", queues.rq)):
        if name not in skipped:
            ran = workloads(**sizes, payload_bytes=payload_bytes)
            figures.update({f"{name}_{key}": value for key, value in ran.items()})
    settings: dict[str, object] = {**sizes, "workers": 2, "skipped": skipped}
    return Figures("peers, same workloads", figures, settings)


def dask(
    tasks: int = 10_000, round_trips: int = 1_000, payload_tasks: int = 20,
    payload_bytes: int = 8 * 1024 * 1024,
) -> dict[str, float]:  # fmt: skip
    """W1, W1 with saturation unbounded, W2 and W4 on a local Dask cluster."""
    dask_config: Any = importlib.import_module("dask.config")
    distributed: Any = importlib.import_module("distributed")
    figures: dict[str, float] = {}
    for saturation, key in ((None, "w1_tasks_per_s"), ("inf", "w1_unbounded_tasks_per_s")):
        settings = (
            {} if saturation is None else {"distributed.scheduler.worker-saturation": saturation}
        )
        with dask_config.set(settings), _cluster(distributed) as client:
            small = b"0123456789abcdef"
            client.gather(client.map(echo, [small] * 100, pure=False))
            started = time.perf_counter()
            client.gather(client.map(echo, [small] * tasks, pure=False))
            figures[key] = tasks / (time.perf_counter() - started)
            if saturation is not None:
                continue
            samples = []
            for _ in range(round_trips):
                began = time.perf_counter()
                client.submit(echo, small, pure=False).result()
                samples.append(time.perf_counter() - began)
            figures["w2_p50_us"] = statistics.median(samples) * 1e6
            data = bytes(range(256)) * (payload_bytes // 256)
            client.submit(echo, data, pure=False).result()
            started = time.perf_counter()
            futures = [client.submit(echo, data, pure=False) for _ in range(payload_tasks)]
            results = client.gather(futures)
            elapsed = time.perf_counter() - started
            if any(len(r) != len(data) for r in results):
                raise RuntimeError("Dask returned payloads of the wrong size")
            figures["w4_mb_per_s"] = payload_tasks * len(data) / elapsed / 1e6
    return figures


class _cluster:
    """A local Dask cluster of two one-thread worker processes, and a client to it."""

    def __init__(self, distributed: Any) -> None:
        self.distributed = distributed

    def __enter__(self) -> Any:
        self.cluster = self.distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=":0",  # any free port: None still takes 8787
        )
        self.client = self.distributed.Client(self.cluster)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.cluster.close()


__all__ = ["available", "dask", "missing", "run"]
