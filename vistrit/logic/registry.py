"""The coordinator's list of workers: capacity, tags, state and the tasks each one holds.

A worker is *eligible* for tasks only after its first ``Heartbeat``. The reference CLI
handshakes as a Worker but never heartbeats: it must never receive a task nor be listed
as a worker, and this rule is how Vistrit tells the two apart.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.scheduler`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

from vistrit.defaults import MAX_SLOTS, QUICK_RUNS
from vistrit.logic.ids import short
from vistrit.logic.placement import FreeWorkers
from vistrit.protocol.types import NodeInfo, NodeState, TaskPayload

#: What a task needs of its worker: ``(kind, name)``, e.g. ``("function", "shout")`` or
#: ``("module", "mytasks")``; ``None`` for what every worker does (arithmetic).
Need = tuple[str, str] | None

#: How many departed workers the registry remembers (the dashboard marks them gone).
DEPARTED_KEPT = 32
#: The most task shapes whose reason to wait is remembered (see ``Registry._reasons``).
MAX_REASONS = 1024


def need_of(payload: TaskPayload) -> Need:
    """What a worker must offer to run *payload* (see :class:`WorkerEntry.offers`)."""
    if isinstance(payload, (TaskPayload.Data, TaskPayload.Map)):
        return ("function", payload.function)
    if isinstance(payload, TaskPayload.Reduce):
        return ("reduce", payload.function)
    if isinstance(payload, TaskPayload.Call):
        return ("module", payload.function.partition(":")[0])
    if isinstance(payload, TaskPayload.Command):
        words = payload.command.split() if not payload.args else [payload.command]
        return ("command", words[0] if words else "")
    return None


def describe_need(need: Need) -> str:
    """*need* as a sentence's object: "function 'shout'", "module 'mytasks' (--tasks)"."""
    if need is None:
        return "arithmetic"
    kind, name = need
    if kind == "module":
        return f"functions of module {name!r} (a worker started with --tasks {name})"
    if kind == "command":
        return f"command {name!r} (a worker started with --allow-commands {name})"
    return f"{'reduce function' if kind == 'reduce' else 'function'} {name!r}"


@dataclass(eq=False)
class WorkerEntry:
    """One connected worker. ``running`` holds the tasks assigned to it and not yet reported."""

    id: uuid.UUID
    info: NodeInfo
    joined: int
    last_seen: float
    eligible: bool = False
    state: NodeState = NodeState.Starting
    running: set[uuid.UUID] = field(default_factory=set)

    #: Tasks held beyond the slots (see ``defaults.PREFETCH``); 0 for v1 workers.
    prefetch: int = 0
    #: Tasks held beyond the slots while its runs are quick (``defaults.QUICK_PREFETCH``;
    #: never fewer than ``prefetch``, and none if that is 0).
    quick_prefetch: int = 0
    #: Its results in a row that each took under a millisecond (see :meth:`ran`).
    quick_runs: int = 0
    #: Tasks it may hold beyond its slots now: ``prefetch``, or, while its runs are quick,
    #: ``quick_prefetch``.
    depth: int = field(init=False)
    #: The most slots believed, whatever the worker claims (see ``defaults.MAX_SLOTS``).
    max_slots: int = MAX_SLOTS
    #: What it offers to run, by kind (``function``, ``reduce``, ``module``, ``command``),
    #: from its ``WorkerOffer``. ``None``: a worker older than v4, which says nothing and is
    #: given any task but a ``Call``; a v4 worker is given nothing until it offers.
    offer: dict[str, frozenset[str]] | None = None
    needs_offer: bool = False

    def offers(self, need: Need) -> bool:
        """Whether the worker offers to run a task that needs *need*."""
        if need is None:
            return True
        kind, name = need
        if self.offer is None:
            return kind != "module"  # an older worker cannot read a Call
        return name in self.offer.get(kind, frozenset())

    def __post_init__(self) -> None:
        self.depth = self.prefetch
        if self.prefetch:
            self.quick_prefetch = max(self.prefetch, self.quick_prefetch)
        else:
            self.quick_prefetch = 0  # no prefetch: strict priority order, quick or not

    # Its NodeInfo and max_slots never change: slots are worked out once, not at every
    # placement (they are read several times a task).
    @cached_property
    def slots(self) -> int:
        """How many tasks the worker runs at once: as it claims, within ``max_slots``."""
        return max(1, min(self.max_slots, self.info.capabilities.max_concurrent_tasks))

    @property
    def capacity(self) -> int:
        """How many tasks the worker may hold: its slots, plus what it prefetches."""
        return self.slots + self.depth

    def ran(self, quick: bool) -> None:
        """The worker reported a run: *quick* (a result that took under a millisecond) or
        not (a longer one, or a Running status). ``QUICK_RUNS`` quick runs in a row deepen
        its queue to ``quick_prefetch``; any other run takes it back to ``prefetch`` (what
        is queued there already stays)."""
        self.quick_runs = self.quick_runs + 1 if quick else 0
        self.depth = self.quick_prefetch if self.quick_runs >= QUICK_RUNS else self.prefetch

    @cached_property
    def tags(self) -> frozenset[str]:
        """The worker's tags: a task's tags must all be among them."""
        return frozenset(self.info.capabilities.tags)

    @property
    def free(self) -> int:
        """How many more tasks the worker may be given now."""
        return max(0, self.capacity - len(self.running))

    @property
    def accepting(self) -> bool:
        """Whether the worker takes new tasks (it has heartbeat and said what it offers,
        and is not draining)."""
        offered = self.offer is not None or not self.needs_offer
        return (
            offered and self.eligible and self.state not in (NodeState.Draining, NodeState.Offline)
        )

    def leaving_note(self) -> str:
        """For the log, when the worker leaves: the tasks it leaves behind."""
        if not self.running:
            return ""
        ids = ", ".join(short(t) for t in sorted(self.running, key=str))
        return f"; its task(s) {ids} go back to the queue"

    def node_info(self, now: int) -> NodeInfo:
        """The worker as ``WorkerListResponse`` shows it, with live state and load."""
        busy = NodeState.Busy if len(self.running) >= self.slots else NodeState.Ready
        state = self.state if self.state in (NodeState.Draining, NodeState.Offline) else busy
        return dataclasses.replace(
            self.info, state=state, running_tasks=len(self.running), last_heartbeat=now
        )


class Registry:
    """Workers by id, in the order they joined."""

    def __init__(self, max_slots: int = MAX_SLOTS, quick_prefetch: int = 0) -> None:
        self.max_slots = max_slots  # the most slots believed of any worker
        self.quick_prefetch = quick_prefetch  # a prefetching worker's, while its runs are quick
        self.workers: dict[uuid.UUID, WorkerEntry] = {}
        self._joined = 0
        #: The workers that left most recently, with when: ``(entry, left_at)``, oldest first.
        self.departed: deque[tuple[WorkerEntry, float]] = deque(maxlen=DEPARTED_KEPT)
        #: The workers with a free slot, by load: told of every change to a worker's load
        #: or availability, here (least-loaded placement in O(log W)).
        self.free: FreeWorkers[WorkerEntry] = FreeWorkers()
        #: Why a task of each shape would wait, as last worked out: asked of every task
        #: queued, it changes only when a worker comes, goes, offers or changes its state,
        #: and is forgotten then (at most MAX_REASONS shapes are kept).
        self._reasons: dict[tuple[Need, frozenset[str]], str | None] = {}
        #: How many such changes there have been: the reasons of the tasks that wait are
        #: looked at again only after one (:class:`~vistrit.coordinator.offers.Notes`).
        self.changes = 0

    def add(
        self, info: NodeInfo, now: float, prefetch: int = 0, needs_offer: bool = False
    ) -> WorkerEntry:
        """A worker joined: remember it (not eligible until its first heartbeat, nor, with
        *needs_offer* (v4), until it says what it offers)."""
        self._joined += 1
        self.free.forget(info.id)  # whatever was known of a worker of that id
        entry = WorkerEntry(
            id=info.id,
            info=info,
            joined=self._joined,
            last_seen=now,
            prefetch=prefetch,
            quick_prefetch=self.quick_prefetch,
            max_slots=self.max_slots,
            needs_offer=needs_offer,
        )
        self.workers[info.id] = entry
        self._changed()
        return entry

    def remove(self, worker_id: uuid.UUID, now: float = 0.0) -> WorkerEntry | None:
        """A worker left at *now*: forget it (but for :attr:`departed`); returns its entry,
        with the tasks it held."""
        entry = self.workers.pop(worker_id, None)
        self.free.forget(worker_id)
        self._changed()
        if entry is not None and entry.eligible:  # one that never heartbeat is no worker
            self.departed.append((entry, now))
        return entry

    def hold(self, entry: WorkerEntry, task_id: uuid.UUID) -> None:
        """The worker holds *task_id* now: a slot of its is taken."""
        entry.running.add(task_id)
        self.free.update(entry)

    def release(self, worker_id: uuid.UUID, task_id: uuid.UUID) -> None:
        """The worker no longer holds *task_id* (it reported, refused, or lost it)."""
        entry = self.workers.get(worker_id)
        if entry is not None:
            entry.running.discard(task_id)
            self.free.update(entry)

    def ran(self, worker_id: uuid.UUID, quick: bool) -> None:
        """The worker reported a run, quick or not (:meth:`WorkerEntry.ran`)."""
        entry = self.workers.get(worker_id)
        if entry is not None and entry.quick_prefetch > entry.prefetch:
            depth = entry.depth
            entry.ran(quick)
            if entry.depth != depth:
                self.free.update(entry)  # its free slots changed with its depth

    def offered(self, entry: WorkerEntry, offer: dict[str, frozenset[str]]) -> None:
        """The worker said what it runs (``WorkerOffer``)."""
        entry.offer = offer
        self.free.update(entry)
        self._changed()

    def leaving_note(self, worker_id: uuid.UUID) -> str:
        """For the log, when a worker leaves: the tasks it leaves behind."""
        entry = self.workers.get(worker_id)
        return entry.leaving_note() if entry is not None else ""

    def get(self, worker_id: uuid.UUID) -> WorkerEntry | None:
        """The worker's entry, or None."""
        return self.workers.get(worker_id)

    def heartbeat(self, worker_id: uuid.UUID, state: NodeState, now: float) -> WorkerEntry | None:
        """A worker's heartbeat: note its state and time, and make it eligible."""
        entry = self.workers.get(worker_id)
        if entry is not None:
            before = entry.eligible, entry.state
            entry.eligible = True
            entry.last_seen = now
            entry.state = (
                state if state in (NodeState.Draining, NodeState.Offline) else NodeState.Ready
            )
            self.free.update(entry)
            if (entry.eligible, entry.state) != before:  # most beats change nothing
                self._changed()
        return entry

    def _changed(self) -> None:
        """What the workers can run may have changed: every reason is worked out again."""
        self._reasons.clear()
        self.changes += 1

    def eligible(self) -> list[WorkerEntry]:
        """The workers that may be given tasks and listed, in joining order."""
        return [w for w in self.workers.values() if w.eligible]

    def waiting_reason(self, need: Need, tags: frozenset[str]) -> str | None:
        """Why no connected worker can run a task that needs *need* and *tags* (None: one
        can, once it has a free slot)."""
        shape = (need, tags)
        if shape in self._reasons:
            return self._reasons[shape]
        if len(self._reasons) >= MAX_REASONS:
            self._reasons.clear()
        reason = self._reasons[shape] = self._look_at_workers(need, tags)
        return reason

    def _look_at_workers(self, need: Need, tags: frozenset[str]) -> str | None:
        workers = [w for w in self.workers.values() if w.accepting]
        if not workers:
            return "no worker is connected"
        capable = [w for w in workers if w.offers(need)]
        tagged = [w for w in workers if tags <= w.tags]
        if any(tags <= w.tags for w in capable):
            return None
        wanted = ", ".join(sorted(tags))
        if not capable:
            return f"no connected worker offers {describe_need(need)}"
        if not tagged:
            return f"no connected worker has the tag(s) {wanted}"
        return f"no connected worker offers {describe_need(need)} with the tag(s) {wanted}"
