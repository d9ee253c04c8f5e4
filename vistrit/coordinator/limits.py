"""What a coordinator refuses to hold: the limits that keep one node from hurting the rest.

Every limit has a default in :mod:`vistrit.defaults`, with its reason, and a refusal that
says which limit and by how much:

* names, function names and tags are bounded (``MAX_NAME_CHARS``, ``MAX_TAGS``), so that
  every listing of tasks or workers fits in a frame, whoever sent them;
* each client has quotas (``max_pending_per_client`` unfinished tasks and
  ``max_retained_bytes_per_client`` bytes of inputs and results kept for it), so that one
  client cannot fill the coordinator's memory for everyone;
* a task whose inputs could never reach a worker in one frame (a ``Reduce`` fed two large
  results, say) fails at once, saying so, instead of being retried for ever.

This module never touches sockets, threads or clocks. Read next:
:mod:`vistrit.coordinator.core`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from vistrit.defaults import ASSIGN_BYTES, MAX_NAME_CHARS, MAX_TAGS, Policy
from vistrit.logic.store import TaskStore, payload_bytes
from vistrit.protocol.types import NodeType, Task, TaskPayload


def over_limits(name: str, tags: Sequence[str], function: str = "") -> str | None:
    """Which name or tag passes the limits (``MAX_NAME_CHARS``, ``MAX_TAGS``), if one does:
    what is listed must fit in a frame, whoever sent it."""
    if len(name) > MAX_NAME_CHARS:
        return f"name has {len(name)} characters (at most {MAX_NAME_CHARS})"
    if len(function) > MAX_NAME_CHARS:
        return f"function name has {len(function)} characters (at most {MAX_NAME_CHARS})"
    if len(tags) > MAX_TAGS:
        return f"{len(tags)} tags are too many (at most {MAX_TAGS})"
    longest = max((len(tag) for tag in tags), default=0)
    if longest > MAX_NAME_CHARS:
        return f"tag has {longest} characters (at most {MAX_NAME_CHARS})"
    return None


def refusal(
    kind: NodeType, sender: uuid.UUID, task: Task, store: TaskStore, policy: Policy
) -> str | None:
    """Why a new task is refused: names past the limits, an unknown dependency, or a full
    quota of its client (a node of *kind* with id *sender*). None: it is accepted."""
    why = over_limits(task.name, task.tags, getattr(task.payload, "function", ""))
    if why is not None:
        return f"the task's {why}"
    missing = next((d for d in task.dependencies if d not in store.records), None)
    if missing is not None:
        return f"unknown dependency {missing}"
    if kind != NodeType.Client:
        return None
    quotas = (policy.max_pending_per_client, policy.max_retained_bytes_per_client)
    return store.over_quota(sender, task, *quotas)


def cannot_assign(inputs: TaskPayload | str) -> str | None:
    """Why a task with these inputs can never be sent to a worker, or None. (A string is
    already why: a Reduce that cannot be fed, from :func:`~vistrit.logic.scheduler.inputs_of`.)"""
    if isinstance(inputs, str):
        return inputs
    size = payload_bytes(inputs)
    if size <= ASSIGN_BYTES:
        return None
    return f"its inputs are {size} bytes; one frame carries at most {ASSIGN_BYTES}"


__all__ = ["ASSIGN_BYTES", "cannot_assign", "over_limits", "refusal"]
