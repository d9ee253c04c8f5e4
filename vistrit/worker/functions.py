"""The functions a worker can run by name: the built-ins, and your own.

A *task function* takes the task's data (``bytes``) and returns its output: ``bytes``,
``str`` (sent as UTF-8), a number, or ``None`` (no output). It may take a second
argument, a :class:`TaskContext`, to report progress and to notice cancellation::

    from vistrit import task

    @task
    def shout(data: bytes) -> str:
        return data.decode().upper() + "!"

    @task(name="slow-count")
    def slow_count(data: bytes, ctx) -> int:
        for percent in range(0, 101, 10):
            if ctx.cancelled:
                raise TaskCancelled()
            ctx.progress(percent)
        return len(data.split())

Start a worker with ``--tasks mymodule`` and its functions are registered when the module
is imported. Built-ins (the reference worker's, with a real SHA-256, plus ``echo``):

* Data functions: ``echo``, ``uppercase``, ``lowercase``, ``reverse``, ``word_count``,
  ``line_count``, ``sha256`` (hex digest);
* Reduce functions: ``sum``, ``count``, ``concat``, ``max``, ``min``.

This module never touches sockets. Read next: :mod:`vistrit.worker.execution`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

TaskFunction = Callable[..., Any]


class TaskFailed(Exception):
    """Raise from a task function to fail the task with this message (no traceback logged)."""


class TaskCancelled(Exception):
    """Raise from a task function when it sees ``ctx.cancelled``; the task ends as cancelled."""


@dataclass
class TaskContext:
    """What a running task function may ask of the worker."""

    task_id: str
    _cancel: threading.Event = field(default_factory=threading.Event)
    _report: Callable[[int], None] = lambda percent: None

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled or timed out: stop soon, raise TaskCancelled."""
        return self._cancel.is_set()

    def progress(self, percent: int) -> None:
        """Report progress, 0 to 100; it reaches the coordinator as a TaskStatus."""
        self._report(max(0, min(100, int(percent))))


class FunctionRegistry:
    """Functions by name: ``data`` functions (for Data and Map) and ``reduce`` functions."""

    def __init__(self) -> None:
        self.data: dict[str, TaskFunction] = {}
        self.reduce: dict[str, Callable[[list[bytes]], Any]] = {}

    def register(self, name: str, function: TaskFunction) -> None:
        """Add a task function under a name."""
        if not name or not isinstance(name, str):
            raise ValueError("a task function needs a non-empty name")
        self.data[name] = function

    def call(self, name: str, data: bytes, ctx: TaskContext) -> bytes:
        """Run the named function on data; its result as bytes."""
        function = self.data.get(name)
        if function is None:
            known = ", ".join(sorted(self.data))
            raise TaskFailed(f"unknown function {name!r} (this worker has: {known})")
        return to_bytes(function(data, ctx) if _wants_context(function) else function(data))

    def call_reduce(self, name: str, inputs: list[bytes]) -> bytes:
        """Run the named reduce function on results; its result as bytes."""
        function = self.reduce.get(name)
        if function is None:
            known = ", ".join(sorted(self.reduce))
            raise TaskFailed(f"unknown reduce function {name!r} (this worker has: {known})")
        return to_bytes(function(inputs))


def _wants_context(function: TaskFunction) -> bool:
    """Whether *function* takes a second, context, argument; asked for every task, so its
    signature is read once (``inspect.signature`` costs more than a small task)."""
    try:
        return _takes_context(function)
    except TypeError:  # an unhashable callable: read every time
        return _takes_context.__wrapped__(function)


@functools.lru_cache(maxsize=1024)
def _takes_context(function: TaskFunction) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def to_bytes(output: Any) -> bytes:
    """A task function's return value as the bytes of the result."""
    if output is None:
        return b""
    if isinstance(output, (bytes, bytearray, memoryview)):
        return bytes(output)
    if isinstance(output, str):
        return output.encode("utf-8")
    if isinstance(output, bool):
        return b"true" if output else b"false"
    if isinstance(output, (int, float)):
        return str(output).encode()
    raise TaskFailed(
        f"a task function returned {type(output).__name__}; return bytes, str or a number"
    )


def text_of(data: bytes) -> str:
    """Task data as text (UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFailed(f"the data is not UTF-8 text (byte {exc.start})") from None


def numbers_of(inputs: list[bytes]) -> list[int | float]:
    """Task data as numbers, one per line or separated by spaces."""
    values: list[int | float] = []
    for index, raw in enumerate(inputs):
        text = text_of(raw).strip()
        try:
            values.append(int(text))
        except ValueError:
            try:
                values.append(float(text))
            except ValueError:
                raise TaskFailed(f"input {index} is not a number: {text[:40]!r}") from None
    return values


#: The functions every worker has. ``--tasks`` modules add to it.
DEFAULT = FunctionRegistry()

DEFAULT.data.update(
    {
        "echo": lambda data: data,
        "uppercase": lambda data: text_of(data).upper(),
        "lowercase": lambda data: text_of(data).lower(),
        "reverse": lambda data: text_of(data)[::-1],
        "word_count": lambda data: len(text_of(data).split()),
        "line_count": lambda data: len(text_of(data).splitlines()),
        "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    }
)


def _extreme(pick: Callable[[list[int | float]], int | float]) -> Callable[[list[bytes]], Any]:
    def reduce(inputs: list[bytes]) -> Any:
        if not inputs:
            raise TaskFailed("no inputs to reduce")
        return pick(numbers_of(inputs))

    return reduce


DEFAULT.reduce.update(
    {
        "sum": lambda inputs: sum(numbers_of(inputs)),
        "count": lambda inputs: len(inputs),
        "concat": lambda inputs: b"".join(inputs),
        "max": _extreme(max),
        "min": _extreme(min),
    }
)


@overload
def task(function: TaskFunction, *, name: str | None = None) -> TaskFunction:
    """Make a function runnable by workers (started with ``--tasks`` naming its module)."""
    ...


@overload
def task(
    function: None = None, *, name: str | None = None
) -> Callable[[TaskFunction], TaskFunction]:
    """Make a function runnable by workers (started with ``--tasks`` naming its module)."""
    ...


def task(function: TaskFunction | None = None, *, name: str | None = None) -> Any:
    """Register a task function under its name (or *name*), as ``@task`` or ``@task(name=...)``."""

    def register(fn: TaskFunction) -> TaskFunction:
        DEFAULT.register(name or fn.__name__, fn)
        return fn

    return register(function) if function is not None else register
