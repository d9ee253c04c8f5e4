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

import time
import uuid
from collections.abc import Iterable
from typing import Any

from vistrit.protocol.types import Task, TaskPayload, TaskPriority, TaskState
from vistrit.results import TaskFuture

#: The priorities by the names the SDK and the CLI take.
PRIORITIES = {p.name.lower(): p for p in TaskPriority}

#: The options every ``submit_*`` call takes besides its payload and name.
OPTIONS = frozenset({"retries", "timeout", "priority", "tags", "after", "task_id"})


def new_task(
    payload: TaskPayload,
    name: str,
    submitted_by: uuid.UUID,
    retries: int = 0,
    timeout: int = 0,
    priority: str | TaskPriority = "normal",
    tags: Iterable[str] = (),
    after: Iterable[uuid.UUID | TaskFuture | str] = (),
    task_id: uuid.UUID | None = None,
) -> Task:
    """A new Pending task (see :meth:`~vistrit.client.VistritClient.submit` for the
    arguments); raises ``ValueError`` for a bad one."""
    if retries < 0 or timeout < 0:
        raise ValueError("retries and timeout cannot be negative")
    return Task(
        id=task_id or uuid.uuid4(),
        name=name,
        payload=payload,
        state=TaskState.Pending(),
        priority=priority_of(priority),
        max_retries=retries,
        timeout_seconds=timeout,
        tags=tuple(tags),
        created_at=int(time.time()),
        submitted_by=submitted_by,
        dependencies=tuple(task_id_of(item) for item in after),
    )


def to_bytes(data: str | bytes) -> bytes:
    """Task data as bytes: ``str`` is encoded as UTF-8; anything else is a TypeError."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"task data must be str or bytes, not {type(data).__name__}")


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
    "OPTIONS",
    "PRIORITIES",
    "check_options",
    "new_task",
    "priority_of",
    "task_id_of",
    "to_bytes",
]
