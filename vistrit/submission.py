"""What a client submits: a ``Task`` built from the SDK's arguments, checked before it leaves.

:class:`~vistrit.client.VistritClient` takes friendly arguments (``priority="high"``,
``after=[future]``, ``str`` or ``bytes`` data); the wire takes a ``Task`` with every field
typed. These functions turn one into the other, and refuse bad input here, with an error
naming the argument, rather than on the coordinator.

The task's id is chosen here (a fresh UUID unless the caller gives one), so that a client
that loses its coordinator can submit again under the same id: the coordinator
acknowledges a known id again instead of running the task twice.

This module never touches sockets, threads or logging. Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from vistrit.defaults import ASSIGN_BYTES
from vistrit.logic.store import payload_bytes
from vistrit.protocol.types import Task, TaskPayload, TaskPriority, TaskState
from vistrit.protocol.values import encode_call
from vistrit.results import TaskFuture, TaskTooLarge, kind_of

#: The priorities by the names the SDK and the CLI take.
PRIORITIES = {p.name.lower(): p for p in TaskPriority}

#: The most tasks, and about the most bytes of inputs, a ``TaskSubmitBatch`` carries (the
#: coordinator takes at most 10,000 tasks a batch; a frame, 16 MiB).
BATCH_TASKS = 1_000
BATCH_BYTES = 4 * 1024 * 1024

#: The state of every new task: a value without fields, and frozen, so one object serves
#: them all (a client may hold a hundred thousand tasks until they are answered).
NEW_STATE = TaskState.Pending()

#: The options every ``submit_*`` call takes besides its payload and name.
OPTIONS = frozenset({"retries", "timeout", "priority", "tags", "after", "task_id"})


def new_task(
    payload: TaskPayload,
    name: str,
    submitted_by: uuid.UUID,
    retries: int = 0,
    timeout: float = 0,
    priority: str | TaskPriority = "normal",
    tags: Iterable[str] = (),
    after: Iterable[uuid.UUID | TaskFuture | str] = (),
    task_id: uuid.UUID | None = None,
) -> Task:
    """A new Pending task (see :meth:`~vistrit.client.VistritClient.submit` for the
    arguments); raises ``ValueError`` for a bad one."""
    if retries < 0 or timeout < 0:
        raise ValueError("retries and timeout cannot be negative")
    size = payload_bytes(payload)
    if size > ASSIGN_BYTES:
        raise TaskTooLarge(
            f"the task's input is {size:,} bytes; one frame carries at most {ASSIGN_BYTES:,} "
            f"(MAX_PAYLOAD, 16 MiB, less 64 KiB for the rest of the task): split it, or "
            f"pass a path the workers can read"
        )
    return Task(
        id=task_id or uuid.uuid4(),
        name=name,
        payload=payload,
        state=NEW_STATE,
        priority=priority_of(priority),
        max_retries=retries,
        timeout_seconds=math.ceil(timeout),  # whole seconds on the wire, rounded up
        tags=tuple(tags),
        created_at=int(time.time()),
        submitted_by=submitted_by,
        dependencies=tuple(task_id_of(item) for item in after),
    )


def payload_of(
    function: str | Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[TaskPayload, str, str]:
    """What ``submit(function, *args, **kwargs)`` sends: the payload, how its result is
    read (:func:`~vistrit.results.kind_of`) and the task's default name.

    A task function's name (no ``:``) is v1's ``Data``: one ``str`` or ``bytes`` argument
    (or ``data=``). A function, or its ``"module:name"`` path, is a v4 ``Call`` with typed
    arguments."""
    if isinstance(function, str) and ":" not in function:
        kwargs = dict(kwargs)
        data = args[0] if args else kwargs.pop("data", b"")
        if len(args) > 1 or kwargs:
            raise TypeError(
                f"a task function by name ({function!r}) takes one str or bytes; to pass "
                f"Python values, submit the function itself or its 'module:name' path"
            )
        payload: TaskPayload = TaskPayload.Data(function=function, data=to_bytes(data))
        return payload, kind_of(payload, isinstance(data, str)), function
    path = function if isinstance(function, str) else path_of(function)
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"not an import path (module:function): {path!r}")
    try:
        arguments = encode_call(tuple(args), kwargs)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the arguments of {path} cannot be sent: {exc}") from None
    return TaskPayload.Call(function=path, arguments=arguments), "value", name


def to_bytes(data: str | bytes) -> bytes:
    """Task data as bytes: ``str`` is encoded as UTF-8; anything else is a TypeError."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"task data must be str or bytes, not {type(data).__name__}")


def path_of(function: Callable[..., Any]) -> str:
    """The import path (``module:name``) a worker finds *function* by; a ``TypeError``
    for one it could not (a lambda, a nested function, a method, a built-in).

    A function defined in the script that runs (``__main__``) is sent under the script's
    module name (``python myscript.py``: ``myscript``), which a worker started with
    ``--tasks myscript`` imports (the script's ``if __name__ == "__main__":`` part does
    not run there)."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not inspect.isfunction(function) or module is None or "." in qualname or "<" in qualname:
        raise TypeError(
            f"only a function defined at the top of a module can be sent by import path, "
            f"not {function!r}"
        )
    if module == "__main__":
        module = _main_module_name()
    return f"{module}:{qualname}"


def _main_module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    filename = getattr(main, "__file__", None)
    if not filename:
        raise TypeError("a function typed in an interactive session has no module to import")
    return Path(str(filename)).stem


def priority_of(value: str | TaskPriority) -> TaskPriority:
    """A priority given by name (``"high"``, any case) or as itself."""
    if isinstance(value, TaskPriority):
        return value
    try:
        return PRIORITIES[str(value).lower()]
    except KeyError:
        raise ValueError(
            f"unknown priority {value!r}; choose from {', '.join(PRIORITIES)}"
        ) from None


def task_id_of(value: uuid.UUID | TaskFuture | str) -> uuid.UUID:
    """A task id given as a UUID, its text, or the task's future."""
    if isinstance(value, TaskFuture):
        return value.task_id
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"not a task id: {value!r}") from None


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """*options*, if each is one of :data:`OPTIONS`; else a TypeError naming the others."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")
    return options


__all__ = [
    "NEW_STATE",
    "OPTIONS",
    "PRIORITIES",
    "check_options",
    "new_task",
    "path_of",
    "payload_of",
    "priority_of",
    "task_id_of",
    "to_bytes",
]


def batches(tasks: Sequence[Task]) -> list[list[Task]]:
    """*tasks* cut into batches of at most :data:`BATCH_TASKS` tasks, each with at most
    :data:`BATCH_BYTES` bytes of inputs (a larger task goes in a batch of its own), in
    order."""
    cut: list[list[Task]] = []
    size = 0
    for task in tasks:
        weight = payload_bytes(task.payload)
        if not cut or len(cut[-1]) >= BATCH_TASKS or (size + weight > BATCH_BYTES and cut[-1]):
            cut.append([])
            size = 0
        cut[-1].append(task)
        size += weight
    return cut
