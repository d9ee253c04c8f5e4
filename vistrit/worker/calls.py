"""Running a ``Call`` task: a Python function by its import path, with typed arguments.

A client sends ``submit(fn, *args, **kwargs)`` as ``Call{function="module:name",
arguments}`` (:func:`vistrit.submission.path_of`). The worker runs it only if ``module``
is one it was started with (``--tasks MODULE``, repeatable): a remote never makes a
worker import anything else. And
the path must name a function *defined* in that module: ``mytasks:os.system`` is refused,
even though ``mytasks`` imported ``os``.

The arguments and the result travel in the value encoding
(:mod:`vistrit.protocol.values`). A function that raises fails its task with
:func:`error_value`: its exception's type, message and traceback, which the client raises
as a :class:`~vistrit.results.TaskError`.

A called function reaches its task's :class:`~vistrit.worker.functions.TaskContext`
(progress, cancellation) through :func:`current_task`.

This module never touches sockets. Read next: :mod:`vistrit.worker.execution`.
"""

from __future__ import annotations

import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Collection
from typing import Any

from vistrit.protocol.errors import ProtocolError
from vistrit.protocol.values import decode_call, encode_value
from vistrit.worker.functions import TaskCancelled, TaskContext, TaskFailed

_local = threading.local()

#: Appended to a path: call the function once per item (see :func:`run_call`).
MAP_SUFFIX = "@map"


def current_task() -> TaskContext | None:
    """The context of the task this thread runs (``None`` outside a task): call
    ``current_task().progress(50)``, or check ``current_task().cancelled``."""
    return getattr(_local, "context", None)


def resolve(path: str, modules: Collection[str]) -> Callable[..., Any]:
    """The function at *path*, if its module is among *modules* (already imported at the
    worker's start) and it was defined there; otherwise ``TaskFailed`` saying why."""
    module_name, colon, name = path.partition(":")
    if not colon or not module_name or not name:
        raise TaskFailed(f"not an import path (module:function): {path!r}")
    if module_name not in modules:
        offered = ", ".join(sorted(modules)) or "none"
        raise TaskFailed(
            f"this worker does not run functions of module {module_name!r} "
            f"(its --tasks modules: {offered})"
        )
    module = sys.modules.get(module_name)
    function = getattr(module, name, None) if module is not None else None
    if (
        function is None
        or not inspect.isfunction(function)
        or function.__module__ != module_name
        or function.__qualname__ != name
    ):
        raise TaskFailed(f"module {module_name!r} defines no function {name!r}")
    return function


def run_call(
    path: str, arguments: bytes, ctx: TaskContext, modules: Collection[str]
) -> tuple[bool, bytes, str | None, str | None]:
    """Run one call: ``(success, data, error, traceback)``. *data* is the encoded result,
    or on failure :func:`error_value`'s encoding; *error* is ``"Type: message"``.

    A path ending in :data:`MAP_SUFFIX` (``mytasks:area@map``) calls the function once per
    item of its one argument, a list of argument tuples, and returns the list of results
    (what ``Executor.map`` sends for a ``chunksize`` above 1)."""
    batch = path.endswith(MAP_SUFFIX)
    function = resolve(path.removesuffix(MAP_SUFFIX), modules)
    try:
        args, kwargs = decode_call(arguments)
    except ProtocolError as exc:
        raise TaskFailed(f"the call's arguments are malformed: {exc}") from None
    if batch and not (len(args) == 1 and isinstance(args[0], list) and not kwargs):
        raise TaskFailed(f"{path} takes one list of argument tuples")
    if batch and not all(isinstance(item, tuple) for item in args[0]):
        raise TaskFailed(f"{path} takes one list of argument tuples")
    _local.context = ctx
    try:
        value = [function(*item) for item in args[0]] if batch else function(*args, **kwargs)
    except TaskCancelled:
        raise  # it saw ctx.cancelled: the task ends as cancelled
    except Exception as exc:  # the task's own code failed: that is its outcome
        text = remote_traceback(exc)
        return False, error_value(exc, text), describe(exc), text
    finally:
        _local.context = None
    try:
        return True, encode_value(value), None, None
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"{path} returned a value that cannot travel: {exc}") from None


def remote_traceback(exc: BaseException) -> str:
    """*exc* 's traceback from the called function down (this module's frame left out),
    without the "Traceback (most recent call last):" line."""
    below = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    lines = traceback.format_exception(type(exc), exc, below)
    return "".join(lines[1:] if lines[0].startswith("Traceback") else lines)


def describe(exc: BaseException) -> str:
    """``"Type: message"`` (or only the type, when the message is empty)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_value(exc: BaseException, traceback_text: str) -> bytes:
    """The encoding of a failed call's error: ``{"type", "message", "traceback"}``."""
    return encode_value(
        {"type": type(exc).__name__, "message": str(exc), "traceback": traceback_text}
    )


__all__ = [
    "MAP_SUFFIX",
    "current_task",
    "describe",
    "error_value",
    "remote_traceback",
    "resolve",
    "run_call",
]
