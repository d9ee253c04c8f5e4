"""W1, W2 and W4 on Celery and on RQ, two task queues that keep their work in Redis.

``python -m vistrit bench peers`` runs them beside Dask (:mod:`vistrit.bench.peers`) where
they can be had: the ``celery``, ``rq`` and ``redis`` packages installed, and Debian's
``redis-server`` on the ``PATH``. Each run starts its own Redis on a free port of
127.0.0.1 (no disk: ``--save ''``), two worker processes of one slot each, as the cluster
workloads start two one-slot Vistrit workers, and stops all of them by process id.

Each system is set up as its documentation shows a newcomer, with nothing tuned:

* **Celery**: one worker process with ``--concurrency 2`` (its prefork pool: two children),
  Redis as broker and as result backend, Celery's default JSON serializer. W1 is one
  ``group`` of ``echo`` signatures; W2 ``echo.delay(x).get()``; W4 20 ``delay`` calls,
  then their results.
* **RQ**: two ``rq worker --worker-class rq.SimpleWorker`` processes. RQ's default worker
  forks a child for every job, and so ran 21 tasks a second here where ``SimpleWorker``,
  which runs the job in the worker process itself, ran 695: the bench takes the faster.
  W1 is one ``enqueue_many``, then waiting until every job is finished; W2 ``enqueue``, then
  ``latest_result(timeout=...)``, which blocks on Redis; W4 20 ``enqueue`` calls, then their
  results.

The Celery workers find their app through this module's ``celery_app``, made when first
asked for, so that importing this module needs none of these packages.

Nothing prints; figures are returned. Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from vistrit.bench.tasks import echo

REDIS_URL_VARIABLE = "VISTRIT_BENCH_REDIS"
"""Where a Celery worker started by the bench finds its Redis."""

QUEUE = "vistrit-bench"
SMALL = b"0123456789abcdef"
STARTUP_SECONDS = 60.0
"""How long a peer's worker processes may take to come up before the run fails."""


def missing(system: str) -> str | None:
    """Why *system* (``celery`` or ``rq``) cannot run here, or None if it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not on the PATH (Debian: apt-get install redis-server)"
    for module in (system, "redis"):
        try:
            importlib.import_module(module)
        except ImportError:
            return f"the {module!r} package is not installed (pip install {system})"
    return None


def __getattr__(name: str) -> Any:
    """``celery_app``: the Celery app of the bench's workers, made on first use."""
    if name != "celery_app":
        raise AttributeError(name)
    celery: Any = importlib.import_module("celery")
    url = os.environ[REDIS_URL_VARIABLE]
    app = celery.Celery("vistrit-bench", broker=url, backend=url)
    app.conf.task_default_queue = QUEUE
    app.conf.worker_hijack_root_logger = False
    app.task(name="vistrit-bench.echo")(echo)
    globals()["celery_app"] = app
    return app


def celery(
    tasks: int = 10_000, round_trips: int = 1_000, payload_tasks: int = 20,
    payload_bytes: int = 8 * 1024 * 1024,
) -> dict[str, float]:  # fmt: skip
    """W1, W2 and W4 on Celery with Redis, with two worker slots."""
    with _redis() as url:
        os.environ[REDIS_URL_VARIABLE] = url
        app = __getattr__("celery_app")
        echo_task = app.tasks["vistrit-bench.echo"]
        command = [sys.executable, "-m", "celery", "-A", f"{__name__}:celery_app", "worker",
                   "--concurrency", "2", "--pool", "prefork", "--loglevel", "error",
                   "--without-gossip", "--without-mingle", "-Q", QUEUE]  # fmt: skip
        with _processes([command], {REDIS_URL_VARIABLE: url}):
            echo_task.delay(SMALL).get(timeout=STARTUP_SECONDS)

            def many(count: int, data: bytes) -> list[Any]:
                group: Any = importlib.import_module("celery").group
                return list(group(echo_task.s(data) for _ in range(count))().get(timeout=600))

            def one(data: bytes) -> Any:
                return echo_task.delay(data).get(timeout=60)

            def payloads(count: int, data: bytes) -> list[Any]:
                results = [echo_task.delay(data) for _ in range(count)]
                return [result.get(timeout=600) for result in results]

            figures = _measure(many, one, payloads, tasks, round_trips, payload_tasks,
                               payload_bytes)  # fmt: skip
        app.close()
    return figures


def rq(
    tasks: int = 10_000, round_trips: int = 1_000, payload_tasks: int = 20,
    payload_bytes: int = 8 * 1024 * 1024,
) -> dict[str, float]:  # fmt: skip
    """W1, W2 and W4 on RQ, with two worker processes."""
    redis: Any = importlib.import_module("redis")
    rq_module: Any = importlib.import_module("rq")
    registries: Any = importlib.import_module("rq.registry")
    with _redis() as url:
        connection = redis.Redis.from_url(url)
        queue = rq_module.Queue(QUEUE, connection=connection)
        worker = [sys.executable, "-c", "from rq.cli import main; main()", "worker",
                  "--url", url, "--quiet", "--worker-class", "rq.SimpleWorker", QUEUE]  # fmt: skip
        with _processes([worker, worker], {}):

            def result_of(job: Any, timeout: float) -> Any:
                result = job.latest_result(timeout=int(timeout))
                if result is None or result.type != result.Type.SUCCESSFUL:
                    raise RuntimeError(f"RQ job {job.id} did not succeed: {result!r}")
                return result.return_value

            result_of(queue.enqueue(echo, SMALL), STARTUP_SECONDS)
            finished = registries.FinishedJobRegistry(queue=queue)

            def many(count: int, data: bytes) -> list[Any]:
                before = finished.get_job_count(cleanup=False)
                jobs = queue.enqueue_many([queue.prepare_data(echo, (data,)) for _ in range(count)])
                deadline = time.monotonic() + 600
                while finished.get_job_count(cleanup=False) < before + count:
                    if time.monotonic() > deadline:
                        raise RuntimeError("RQ did not finish the jobs in 600 s")
                    time.sleep(0.002)
                return [result_of(jobs[0], 1), result_of(jobs[-1], 1)]

            def one(data: bytes) -> Any:
                return result_of(queue.enqueue(echo, data), 60)

            def payloads(count: int, data: bytes) -> list[Any]:
                jobs = [queue.enqueue(echo, data) for _ in range(count)]
                return [result_of(job, 600) for job in jobs]

            figures = _measure(many, one, payloads, tasks, round_trips, payload_tasks,
                               payload_bytes)  # fmt: skip
        connection.close()
    return figures


def _measure(
    many: Callable[[int, bytes], list[Any]], one: Callable[[bytes], Any],
    payloads: Callable[[int, bytes], list[Any]], tasks: int, round_trips: int,
    payload_tasks: int, payload_bytes: int,
) -> dict[str, float]:  # fmt: skip
    """The three workloads through one system's three ways of running echo."""
    many(min(tasks, 100), SMALL)
    started = time.perf_counter()
    results = many(tasks, SMALL)
    w1 = tasks / (time.perf_counter() - started)
    if any(bytes(r) != SMALL for r in results):
        raise RuntimeError("a peer returned the wrong result")
    samples = []
    for _ in range(round_trips):
        began = time.perf_counter()
        one(SMALL)
        samples.append(time.perf_counter() - began)
    data = bytes(range(256)) * (payload_bytes // 256)
    started = time.perf_counter()
    large = payloads(payload_tasks, data)
    elapsed = time.perf_counter() - started
    if any(bytes(r) != data for r in large):
        raise RuntimeError("a peer returned payloads that differ from what it was sent")
    return {
        "w1_tasks_per_s": w1,
        "w2_p50_us": statistics.median(samples) * 1e6,
        "w4_mb_per_s": payload_tasks * len(data) / elapsed / 1e6,
    }


@contextmanager
def _redis() -> Iterator[str]:
    """A Redis server of the run's own on a free port of 127.0.0.1, and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Celery's result backend publishes each result on pub/sub: twenty 8 MiB results
    # outrun Redis's default limit for a subscriber's output (32 MB), and Redis then drops
    # the subscriber, whose client must find its results again (once it waited for good).
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--loglevel", "warning",
               "--client-output-buffer-limit", "pubsub 0 0 0"]  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    with _processes([command], {}):
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {port}") from None
                time.sleep(0.02)
        yield url


@contextmanager
def _processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    """Start *commands*; on the way out stop each by its process id (TERM, then KILL)."""
    started = []
    try:
        for command in commands:
            started.append(
                subprocess.Popen(
                    command,
                    env={**os.environ, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield
    finally:
        for process in started:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and the children of its session: TERM, then KILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


__all__ = ["celery", "missing", "rq"]
