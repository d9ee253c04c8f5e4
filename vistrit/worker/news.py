"""News held back: a task that will be over in a moment is acknowledged by its result.

A worker tells the coordinator that a task runs (a ``TaskStatus``, Running) as it starts
it; to a v4 coordinator that status is also the acknowledgement of the assignment. For a
task that ends a few microseconds later, that is one frame more to encode, send, read and
decode on each side, on the way of every round trip, to say what the result says anyway.

So, as TCP delays an acknowledgement to let it ride on the reply: if the *last* run of
the same function (or program) ended within :data:`QUICK_RUN`, the Running status of the
next one is held. If the task ends first, the status is dropped and its result is the
acknowledgement (the coordinator takes a result for a task still Scheduled). If it is
still running at the worker's next heartbeat, the held status goes then, just before
the heartbeat: within one ``heartbeat_interval``, well inside the coordinator's
``heartbeat_timeout`` for an acknowledgement. A first run, and every run after a slow
one, is reported at once, as before.

The same goes for the acknowledgement of a task the worker accepts but queues (a task
prefetched while its slots are busy: a ``TaskAssignAck``): if the last run of its function
was quick, the ack is held, and the task's Running status, held or sent when it starts,
takes its place; its result, if it ends first; the next heartbeat, if it is still queued
then. A task handed back (the worker drains) loses what was held for it, before its
refusal goes.

What it costs: a task whose function is usually quick but that runs long this time shows
as Scheduled, not Running, until that heartbeat, and its ``timeout_seconds`` counts from
then. What it buys: ``docs/performance.rst`` (W2 and the coordinator's CPU per task).

This module never touches sockets or clocks. Read next: :mod:`vistrit.worker.node`.
"""

from __future__ import annotations

import threading
import uuid

from vistrit.protocol import messages as m
from vistrit.protocol.types import Task, TaskPayload

#: A run that ended within this many seconds is quick: the next run of the same function
#: holds its Running status back.
QUICK_RUN = 0.005
#: The most functions remembered (the memory is emptied when full; a function forgotten
#: is only reported at once again).
MAX_REMEMBERED = 1024


def what_runs(task: Task) -> str:
    """What *task* runs, for remembering how long its runs take: its payload's kind and
    function (or program; the expression of a ``Compute`` is not remembered)."""
    payload = task.payload
    if isinstance(payload, TaskPayload.Command):
        return f"Command {payload.command}"
    return f"{payload.WIRE_NAME} {getattr(payload, 'function', '')}"


class HeldNews:
    """The Running statuses held back, and which functions ran quickly last time. Safe to
    use from every slot thread and the heartbeat timer at once."""

    def __init__(self, quick: float = QUICK_RUN) -> None:
        self.quick = quick
        self._lock = threading.Lock()
        self._quick: dict[str, bool] = {}
        self._held: dict[uuid.UUID, m.TaskStatus | m.TaskAssignAck] = {}

    def started(self, task: Task, status: m.TaskStatus) -> m.TaskStatus | None:
        """*task* starts: its Running *status*, to send now; or None, held back because the
        last run of the same function was quick."""
        with self._lock:
            if not self._quick.get(what_runs(task), False):
                self._held.pop(task.id, None)  # an acknowledgement held: this says more
                return status
            self._held[task.id] = status  # in the place of its acknowledgement, if held
            return None

    def queued(self, task: Task, ack: m.TaskAssignAck) -> m.TaskAssignAck | None:
        """*task* was accepted, to wait for a slot: its acknowledgement *ack*, to send now;
        or None, held back because the last run of the same function was quick (the
        task's Running status, or its result, will say as much in a moment)."""
        with self._lock:
            if not self._quick.get(what_runs(task), False):
                return ack
            self._held[task.id] = ack
            return None

    def finished(self, task: Task, seconds: float) -> None:
        """*task* ended after *seconds*: its held status, if any, is not sent (its result
        says more), and whether the next run of its function is reported at once."""
        with self._lock:
            self._held.pop(task.id, None)
            if len(self._quick) >= MAX_REMEMBERED:
                self._quick.clear()
            self._quick[what_runs(task)] = seconds < self.quick

    def reported(self, task_id: uuid.UUID) -> None:
        """The task's worker sent another word of it (its progress, or, handing it back,
        its refusal): nothing held for it is to be sent any more."""
        with self._lock:
            self._held.pop(task_id, None)

    def take(self) -> list[m.TaskStatus | m.TaskAssignAck]:
        """What is held back, to send now (the tasks still run, or wait for a slot); nothing
        is held after this."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        return held

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


__all__ = ["MAX_REMEMBERED", "QUICK_RUN", "HeldNews", "what_runs"]
