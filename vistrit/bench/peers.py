"""The same workloads on Dask, side by side with Vistrit's, on this machine, in this run.

``python -m vistrit bench peers`` runs W1 (small tasks at once), W2 (sequential round
trips) and W4 (8 MiB payloads) on a Dask cluster of two worker processes of one thread
each, on 127.0.0.1, as the cluster workloads run them on Vistrit: the same counts, the
same data, a function that returns its argument. W1 is run twice: with Dask's default
``worker-saturation`` and with it unbounded (Dask then sends every task to the workers at
once, as Vistrit's prefetch does). Dask is optional: this workload needs it installed
(``pip install 'dask[distributed]'``), the rest of ``bench`` does not.

Nothing prints; figures are returned. Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import importlib
import statistics
import time
from typing import Any

from vistrit.bench.tasks import echo


def available() -> bool:
    """Whether Dask's distributed scheduler is installed here."""
    try:
        importlib.import_module("distributed")
    except ImportError:
        return False
    return True


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
            dashboard_address=None,
        )
        self.client = self.distributed.Client(self.cluster)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.cluster.close()


__all__ = ["available", "dask"]
