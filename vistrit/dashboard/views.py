"""What the dashboard's JSON API answers: the coordinator's own state, as plain data.

Each view takes the coordinator's lock for as long as it reads (never while it encodes
JSON or talks to a browser) and costs what it shows, not what is remembered: the counts
are those the core keeps, the task list walks back from the newest task (a state filter
walks until the page is full), a task is looked up by its id, the task stream walks back
from the latest to finish, and the throughput comes from a :class:`Throughput` series
sampled once a second. Everything a
view shows comes from the coordinator's state and journal, so a restarted coordinator
shows what it replayed: its tasks, their outcomes and times, and (with a data dir) its
election history (:mod:`vistrit.coordinator.elections`).

Times are Unix seconds. The pages (``static/``) draw what these return; the API is
documented on its own page, ``docs/dashboard-api.rst``.

Read next: :mod:`vistrit.dashboard.server`.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter, deque
from typing import Any

from vistrit.coordinator import Coordinator
from vistrit.coordinator.elections import WHY
from vistrit.logic.ids import match_prefix, prefix_of
from vistrit.logic.registry import WorkerEntry, describe_need, need_of
from vistrit.logic.store import TaskStore, payload_bytes, result_bytes
from vistrit.logic.tasks import FINAL, TaskRecord
from vistrit.protocol.types import TaskPayload
from vistrit.results import remote_error

#: How many seconds of throughput the cluster page draws.
THROUGHPUT_SECONDS = 300

#: The most tasks one page of the task list, or the task stream, shows.
MAX_LIMIT = 1000

#: The most characters of an error or a traceback a task's page shows.
MAX_TEXT = 20_000


class Throughput:
    """Tasks finished per second, over the last :data:`THROUGHPUT_SECONDS`: sampled from
    the store's counters by :meth:`sample` (once a second, from the dashboard's timer),
    and, at start, rebuilt from the final states' own times of the remembered tasks (so
    that a restarted coordinator draws what happened before it)."""

    def __init__(self, coordinator: Coordinator, now: float) -> None:
        self.coordinator = coordinator
        self.points: deque[tuple[int, int, int]] = deque(maxlen=THROUGHPUT_SECONDS)
        self._lock = threading.Lock()
        start = int(now) - THROUGHPUT_SECONDS
        finished: Counter[tuple[int, bool]] = Counter()
        with coordinator.lock:
            core = coordinator.core
            stored = list(core.store.records.items()) if core is not None else []
            self._last = self._totals()
        for record in itertools.starmap(TaskStore.whole, stored):  # unpacked out of the lock
            at = final_time(record)
            if at is not None and start < at <= now:
                finished[(int(at), record.status == "Completed")] += 1
        for second in range(start + 1, int(now) + 1):
            self.points.append((second, finished[(second, True)], finished[(second, False)]))

    def _totals(self) -> tuple[int, int]:
        core = self.coordinator.core
        if core is None:
            return (0, 0)
        return (core.store.completed_total, core.store.failed_total)

    def sample(self, now: float) -> None:
        """Add the second just ended: what finished since the last sample."""
        with self.coordinator.lock:
            totals = self._totals()
        with self._lock:
            completed = max(0, totals[0] - self._last[0])
            failed = max(0, totals[1] - self._last[1])
            self._last = totals
            if self.points and self.points[-1][0] >= int(now):
                return
            self.points.append((int(now), completed, failed))

    def series(self) -> list[dict[str, int]]:
        """The points, oldest first."""
        with self._lock:
            return [{"time": t, "completed": c, "failed": f} for t, c, f in self.points]


def final_time(record: TaskRecord) -> float | None:
    """When a finished task finished, by its final state's own time (which, unlike the
    record's ``finished_at``, survives a replay); ``None`` if it has not finished."""
    if not record.finished:
        return None
    state = record.state
    at = getattr(state, "completed_at", None) or getattr(state, "failed_at", None)
    at = at or getattr(state, "cancelled_at", None) or 0
    if record.finished_at is not None and abs(record.finished_at - at) < 1.0:
        return record.finished_at  # finished here: the finer time
    return float(at)


def cluster(coordinator: Coordinator, throughput: Throughput | None) -> dict[str, Any]:
    """The cluster page: this coordinator and its peers, the leader, the term, every
    worker (and those that left lately), the counts, and the throughput."""
    now = time.time()
    with coordinator.lock:
        core = coordinator.core
        if core is None:
            raise LookupError("the coordinator is not started")
        workers = [_worker(w, now) for w in core.registry.eligible()]
        departed = [
            {**_worker(entry, left), "left_at": left, "gone_for": round(now - left, 1)}
            for entry, left in reversed(core.registry.departed)
        ]
        view = {
            "now": now,
            "coordinator": _coordinator(coordinator, now),
            "counts": {  # each kept up to date by the core: none needs a scan
                "queued": core.scheduler.ready_count,
                "waiting": len(core.scheduler.waiting),
                "held": sum(len(w.running) for w in core.registry.workers.values()),
                "remembered": len(core.store.records),
                "completed_total": core.store.completed_total,
                "failed_total": core.store.failed_total,
                "clients": sum(1 for p in core.peers.values() if p.kind.name == "Client"),
            },
            "workers": workers,
            "departed": departed,
        }
    view["throughput"] = throughput.series() if throughput is not None else []
    return view


def _coordinator(coordinator: Coordinator, now: float) -> dict[str, Any]:
    info = coordinator.info
    view: dict[str, Any] = {
        "name": coordinator.name,
        "id": str(info.id),
        "address": f"{info.address.host}:{info.address.port}",
        "started_at": info.started_at,
        "journal": str(coordinator.journal.path) if coordinator.journal is not None else None,
        "role": "Leader",
        "term": None,
        "leader": None,
        "peers": [],
    }
    cluster = coordinator.cluster
    if cluster is None or cluster.election is None:
        return view  # one coordinator: it leads, there is no election
    election = cluster.election
    view.update(
        rank=cluster.config.rank,
        role=election.role,
        term=election.term,
        leader=(
            None
            if election.leader is None
            else {
                "rank": election.leader,
                "address": _address(election.leader_address),
                "term": election.leader_term,
            }
        ),
        peers=[
            {"rank": rank, "address": _address(link.address), "linked": link.conn is not None}
            for rank, link in sorted(cluster.links.items())
        ],
    )
    return view


def _address(address: Any) -> str | None:
    return None if address is None else f"{address[0]}:{address[1]}"


def _worker(entry: WorkerEntry, now: float) -> dict[str, Any]:
    info = entry.info
    return {
        "id": str(entry.id),
        "name": info.name or str(entry.id)[:8],
        "address": f"{info.address.host}:{info.address.port}",
        "slots": entry.slots,
        "running": len(entry.running),
        "load": round(len(entry.running) / entry.slots, 3),
        "heartbeat_age": round(max(0.0, now - entry.last_seen), 2),
        "state": "Draining" if not entry.accepting and entry.eligible else "Ready",
        "tags": sorted(info.capabilities.tags),
        "offers": {kind: sorted(names) for kind, names in (entry.offer or {}).items() if names},
        "joined_at": info.started_at,
    }


def tasks(
    coordinator: Coordinator, limit: int = 50, offset: int = 0, state: str | None = None
) -> dict[str, Any]:
    """A page of the task list, newest first, in *state* if given."""
    with coordinator.lock:
        core = coordinator.core
        if core is None:
            raise LookupError("the coordinator is not started")
        records = core.store.newest(limit, offset, state)
        names = _names(coordinator)
        rows = [_summary(record, names) for record in records]
        total = len(core.store.records) if state is None else None  # None: not counted
    return {"tasks": rows, "limit": limit, "offset": offset, "state": state, "total": total}


def _names(coordinator: Coordinator) -> dict[str, str]:
    """Worker names by id (those connected, and those that left lately). Under the lock."""
    assert coordinator.core is not None
    registry = coordinator.core.registry
    names = {str(entry.id): entry.info.name or "" for entry, _ in registry.departed}
    names.update({str(w.id): w.info.name or "" for w in registry.workers.values()})
    return names


def _function(payload: TaskPayload) -> str:
    for field in ("function", "command", "expression"):
        value = getattr(payload, field, None)
        if isinstance(value, str):
            return value
    return ""


def _summary(record: TaskRecord, names: dict[str, str]) -> dict[str, Any]:
    worker = str(record.worker) if record.worker is not None else None
    running = record.state if record.status == "Running" else None
    return {
        "id": str(record.id),
        "name": record.task.name,
        "kind": type(record.task.payload).__name__,
        "function": _function(record.task.payload),
        "state": record.status,
        "worker": worker,
        "worker_name": names.get(worker, "") if worker else None,
        "submitted_at": record.submitted_at,
        "finished_at": final_time(record),
        # A task settled by an earlier leader (replicated, or replayed) has no count here.
        "attempts": record.attempts if record.attempts or not record.finished else None,
        "progress": getattr(running, "progress", None),
        "waiting": record.waiting,
    }


def task(coordinator: Coordinator, key: str) -> dict[str, Any]:
    """One task's page, by its id or the start of it. ``LookupError`` if no task, or more
    than one, matches."""
    with coordinator.lock:
        core = coordinator.core
        if core is None:
            raise LookupError("the coordinator is not started")
        found = _matching(key, core.store.records)
        if len(found) != 1:
            raise LookupError(f"{len(found) or 'no'} remembered tasks match {key!r}")
        record = core.store.view(found[0])
        assert record is not None  # found under this lock
        names = _names(coordinator)
        view = _summary(record, names)
        result = record.result
        state = record.state
        view.update(
            priority=record.task.priority.name,
            max_retries=record.task.max_retries,
            timeout_seconds=record.task.timeout_seconds,
            tags=list(record.task.tags),
            dependencies=[str(d) for d in record.task.dependencies],
            client=str(record.client) if record.client is not None else None,
            needs=describe_need(need_of(record.task.payload)),
            input_bytes=payload_bytes(record.task.payload),
            output_bytes=result_bytes(record) if result is not None else None,
            workers=[
                {"id": str(w), "name": names.get(str(w), "")}
                for w in record.tried or ((record.worker,) if record.worker else ())
            ],
            errors=[e[:MAX_TEXT] for e in record.errors],
            started_at=_started(record),
            duration_ms=result.duration_ms if result is not None else None,
            error=(getattr(state, "error", None) or "")[:MAX_TEXT] or None,
            final=record.status in FINAL,
        )
        traceback = _traceback(record)
    view["traceback"] = traceback
    return view


def _started(record: TaskRecord) -> float | None:
    """When the task's last attempt started: as its worker reported it while it runs, and
    from its end and duration once it has finished (``None`` if neither tells)."""
    started = getattr(record.state, "started_at", None)
    end = final_time(record)
    if started is None and end is not None and record.result is not None:
        return end - record.result.duration_ms / 1000
    return float(started) if started is not None else None


def _matching(key: str, records: dict[uuid.UUID, TaskRecord | bytes]) -> list[uuid.UUID]:
    """The remembered ids *key* (an id, or its start) matches; ``ValueError`` if it is
    neither. A whole id is looked up, not searched for."""
    prefix = prefix_of(key)
    if prefix is None:
        raise ValueError(f"not a task id, nor the start of one: {key[:40]!r}")
    if len(prefix) == 32:
        return [uuid.UUID(prefix)] if uuid.UUID(prefix) in records else []
    return match_prefix(prefix, records)


def _traceback(record: TaskRecord) -> str | None:
    """A failed call's remote traceback (from its error value), or what the task wrote to
    stderr; ``None`` if there is neither."""
    result = record.result
    if result is None or result.success:
        return None
    error = remote_error(result) if isinstance(record.task.payload, TaskPayload.Call) else None
    if error is not None and isinstance(error.get("traceback"), str):
        return str(error["traceback"])[:MAX_TEXT]
    return result.stderr[:MAX_TEXT] if result.stderr else None


def stream(coordinator: Coordinator, limit: int = 300) -> dict[str, Any]:
    """The task stream: what ran on which worker, when. The *limit* tasks that finished
    last (with a start where their duration tells it) and those running now; each
    worker's slots, for the page to lay the tasks out on."""
    now = time.time()
    with coordinator.lock:
        core = coordinator.core
        if core is None:
            raise LookupError("the coordinator is not started")
        names = _names(coordinator)
        slots = {str(w.id): w.slots for w in core.registry.workers.values()}
        running = [
            record
            for w in core.registry.workers.values()
            for t in w.running
            if (record := core.store.view(t)) is not None
        ]
        bars = [_bar(r, names, now) for r in core.store.recently_finished(limit)]
        bars += [_bar(r, names, now) for r in running if r.status == "Running"]
    workers = sorted(set(slots) | {bar["worker"] for bar in bars if bar["worker"]})
    return {
        "now": now,
        "workers": [
            {"id": w, "name": names.get(w) or w[:8], "slots": slots.get(w), "connected": w in slots}
            for w in workers
        ],
        "tasks": [bar for bar in bars if bar["worker"]],
    }


def _bar(record: TaskRecord, names: dict[str, str], now: float) -> dict[str, Any]:
    worker = str(record.worker) if record.worker is not None else None
    end = final_time(record)
    start = _started(record) or end or now
    return {
        "id": str(record.id),
        "name": record.task.name or _function(record.task.payload),
        "state": record.status,
        "worker": worker,
        "start": start,
        "end": end,
    }


def elections(coordinator: Coordinator) -> dict[str, Any]:
    """The election history: every move of this coordinator's election, oldest first."""
    with coordinator.lock:
        cluster = coordinator.cluster
        if cluster is None or cluster.election is None:
            return {"cluster": False, "term": None, "leader": None, "changes": []}
        election = cluster.election
        changes = [
            {
                "time": c.time,
                "event": c.event,
                "why": WHY.get(c.event, ""),
                "role": c.role,
                "term": c.term,
                "leader": c.leader,
            }
            for c in cluster.history.changes
        ]
        return {
            "cluster": True,
            "rank": cluster.config.rank,
            "role": election.role,
            "term": election.term,
            "leader": election.leader,
            "changes": changes,
        }
