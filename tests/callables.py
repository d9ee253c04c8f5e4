"""Module-level functions the tests send by import path (``callables:area``). Workers in
the tests are started with ``--tasks callables`` (or ``modules=["callables"]``)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import vistrit

#: Set by a test to let :func:`wait_for_gate` return.
GATES: dict[str, threading.Event] = {}


def area(width: float, height: float) -> float:
    """A plain function of two numbers."""
    return width * height


def echo(*args: Any, **kwargs: Any) -> Any:
    """Its arguments back, as a value: (args, kwargs)."""
    return (args, kwargs)


def identity(value: Any) -> Any:
    """Its one argument back."""
    return value


def fail(message: str) -> None:
    """Raises ValueError(message), a frame or two down."""
    _deeper(message)


def _deeper(message: str) -> None:
    raise ValueError(message)


def returns_a_set() -> Any:
    """A value that cannot travel."""
    return {1, 2}


def pid() -> int:
    """The process that ran it."""
    return os.getpid()


def sleep_then(seconds: float, value: Any) -> Any:
    """Sleeps (ignoring cancellation), then returns *value*."""
    time.sleep(seconds)
    return value


def stubborn(seconds: float) -> str:
    """Ignores cancellation for *seconds*, then reports itself cancelled (a late report)."""
    time.sleep(seconds)
    raise vistrit.worker.TaskCancelled()


def with_progress(steps: int) -> int:
    """Reports progress through ``vistrit.current_task()``."""
    ctx = vistrit.current_task()
    for step in range(1, steps + 1):
        if ctx is not None:
            ctx.progress(step * 100 // steps)
        time.sleep(0.05)
    return steps


def wait_for_gate(name: str) -> str:
    """Blocks until the test sets the gate *name* (in-process workers only)."""
    GATES.setdefault(name, threading.Event()).wait(30)
    return name
