"""Task functions for the benchmarks, registered on workers started with
``--tasks vistrit.bench.tasks``.

``bench-spin`` burns CPU in pure Python for a number of loop turns given as its data: the
W3 workload uses it to measure how work scales over worker processes.
"""

from __future__ import annotations

from vistrit.worker.functions import task


@task(name="bench-spin")
def spin(data: bytes) -> int:
    """A CPU-bound task function for W3: burn about the asked milliseconds of CPU."""
    total = 0
    for n in range(int(data)):
        total += n * n % 7
    return total


@task(name="bench-sleep")
def sleep(data: bytes) -> bytes:
    """Wait for the given number of seconds: a task that takes time without using CPU."""
    import time

    time.sleep(float(data))
    return data


def echo(data: bytes) -> bytes:
    """Its argument back: the W1, W2 and W4 task when Dask runs them (``bench peers``)."""
    return data
