"""Routing by capability: what each worker offers, and what a client hears while it waits.

A v4 worker says what it can run in a ``WorkerOffer`` right after it joins: its task
functions, reduce functions, ``--tasks`` modules and ``--allow-commands`` programs. The
scheduler places a task only on a worker that offers what it needs
(:func:`~vistrit.logic.registry.need_of`); a worker older than v4 says nothing and is given
any task but a ``Call``, as before.

A task no connected worker can run stays pending, with a reason
(:meth:`~vistrit.logic.registry.Registry.waiting_reason`): at submission, and again at
most every :data:`NOTE_INTERVAL` after workers come, go, offer or change state (or tasks
come back to the queues). A v4 client hears it (a
``TaskStatus`` in state Pending, whose ``message`` is the reason), and so does anyone who
asks for the task (``status``). While the task runs, its client hears each ``TaskStatus``
its worker sends (Running, with progress).

This module never touches sockets, threads or clocks. Read next:
:mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from vistrit.coordinator.membership import Peer
from vistrit.defaults import MAX_NAME_CHARS
from vistrit.logic.registry import Need, Registry, need_of
from vistrit.logic.store import TaskStore
from vistrit.logic.tasks import PENDING, TaskRecord
from vistrit.protocol import messages as m
from vistrit.protocol.errors import ErrorCode
from vistrit.protocol.types import TaskState

#: How often the reasons of waiting tasks are looked at again (seconds).
NOTE_INTERVAL = 1.0

#: The most names a worker may offer of each kind.
MAX_OFFERED = 1024

Outbox = list[tuple[uuid.UUID, m.Message]]


class Routing(Protocol):
    """What these handlers use of the coordinator's core."""

    store: TaskStore
    registry: Registry
    peers: dict[uuid.UUID, Peer]

    @property
    def id(self) -> uuid.UUID:
        """The coordinator's node id."""
        ...

    def schedule(self, now: float) -> Outbox:
        """Give ready tasks to workers with free slots."""
        ...


def on_offer(core: Routing, peer: Peer, offer: m.WorkerOffer, now: float) -> Outbox:
    """A worker says what it can run: remember it, and schedule (it may now be given tasks)."""
    entry = core.registry.get(peer.id)
    kinds = {
        "function": offer.functions,
        "reduce": offer.reduce_functions,
        "module": offer.modules,
        "command": offer.commands,
    }
    too_many = next((k for k, names in kinds.items() if len(names) > MAX_OFFERED), None)
    too_long = any(len(name) > MAX_NAME_CHARS for names in kinds.values() for name in names)
    if entry is None or too_many or too_long:
        why = (
            "only a worker offers what it runs"
            if entry is None
            else f"an offer lists at most {MAX_OFFERED} names of each kind, "
            f"each of at most {MAX_NAME_CHARS} characters"
        )
        return [(peer.id, m.Error(code=ErrorCode.InvalidRequest, message=why))]
    core.registry.offered(entry, {kind: frozenset(names) for kind, names in kinds.items()})
    return core.schedule(now)


def waiting_note(core: Routing, record: TaskRecord) -> Outbox:
    """Look again at why *record* waits (a new task); if it cannot run, tell its client.
    (A task already placed does not wait: no worker is looked at.)"""
    if record.status != PENDING:
        return []
    return _note(core, record, core.registry.waiting_reason(*_shape(record)))


class Notes:
    """When the reasons of the tasks in the ready queues were last looked at, and as of
    what: the workers' changes and the tasks that came back to the queues since."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.seen: tuple[int, int] | None = None

    def due(
        self, core: Routing, queues: Iterable[Iterable[uuid.UUID]], entered: int, now: float
    ) -> Outbox:
        """At most every :data:`NOTE_INTERVAL`, look again at why each ready task waits
        (the registry works out each shape's reason once); tell the clients of those that
        cannot run. Only if something a reason depends on changed since the last look:
        the workers (:attr:`Registry.changes <vistrit.logic.registry.Registry.changes>`),
        or tasks that entered the queues without a look (*entered*: released by their
        dependencies, or put back; a new task is looked at as it is submitted): the look
        goes through every task queued, under the coordinator's lock."""
        if now - self.at < NOTE_INTERVAL:
            return []
        state = (core.registry.changes, entered)
        if state == self.seen:
            return []
        self.at, self.seen = now, state
        outbox: Outbox = []
        for queue in queues:
            for task_id in queue:
                record = core.store.get(task_id)
                if record is not None:
                    outbox += _note(core, record, core.registry.waiting_reason(*_shape(record)))
        return outbox


def _shape(record: TaskRecord) -> tuple[Need, frozenset[str]]:
    """What a task needs of a worker: what it must offer, and the tags it must have."""
    return need_of(record.task.payload), frozenset(record.task.tags)


def _note(core: Routing, record: TaskRecord, reason: str | None) -> Outbox:
    """Remember why *record* waits; if that changed to a reason, tell its v4 client."""
    if reason == record.waiting or record.status != PENDING:
        return []
    record.waiting = reason
    client = core.peers.get(record.client) if record.client else None
    if reason is None or client is None or client.version < 4:
        return []
    return [(client.id, pending_status(core.id, record))]


def pending_status(coordinator: uuid.UUID, record: TaskRecord) -> m.TaskStatus:
    """A ``TaskStatus`` saying that *record* waits, and why (for a v4 client)."""
    message = f"waiting: {record.waiting}" if record.waiting else None
    return m.TaskStatus(
        task_id=record.id,
        worker_id=coordinator,
        state=TaskState.Pending(),
        progress=None,
        message=message,
    )


def running_news(core: Routing, record: TaskRecord, status: m.TaskStatus) -> Outbox:
    """A worker's ``TaskStatus`` (running, progress), passed on to the task's v4 client."""
    client = core.peers.get(record.client) if record.client else None
    if client is None or client.version < 4:
        return []
    return [(client.id, status)]


def without_stale_news(outbox: Outbox) -> Outbox:
    """*outbox* less the news of a task (``TaskStatus``) to a client that the same outbox
    also sends the task's outcome: a fast task's client hears once, that it finished.
    (Under load a worker's Running and its result are read together; this saves the
    coordinator a message per task.)"""
    if not any(type(msg) is m.TaskStatus for _, msg in outbox):
        return outbox  # most batches: no news at all (a quick task's Running is held back)
    done = {(node, msg.task_id) for node, msg in outbox if type(msg) is m.TaskOutcome}
    if not done:
        return outbox
    return [
        (node, msg)
        for node, msg in outbox
        if type(msg) is not m.TaskStatus or (node, msg.task_id) not in done
    ]


__all__ = [
    "MAX_OFFERED",
    "NOTE_INTERVAL",
    "Notes",
    "on_offer",
    "pending_status",
    "running_news",
    "waiting_note",
    "without_stale_news",
]
