"""The nemesis: the faults of a chaos run, drawn from its seed, applied one at a time.

Four kinds, as Jepsen names such things:

* ``kill`` - SIGKILL a coordinator or a worker; start it again (same data dir, same
  name) when the fault ends. Nothing it held in memory survives.
* ``pause`` - SIGSTOP a node, SIGCONT when the fault ends: it is alive but silent, then
  wakes up believing what it believed before (the case terms exist for).
* ``partition`` - cut the links between two groups of nodes (clients included): one
  node alone, or two random halves. The relays hold what crosses the cut.
* ``slow`` - every link of one node gets slow: frames delayed, and now and then a
  connection broken.

:class:`Schedule` draws the faults: the same seed gives the same faults on the same nodes
for the same durations. The kinds are taken in rounds, each round a shuffle of the kinds
asked for, so that a short run sees every kind. :class:`Nemesis` applies them in a thread
of its own, records each start and end, and on :meth:`Nemesis.stop` heals whatever is
still broken.

Read next: :mod:`vistrit.chaos.lab`.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vistrit.chaos.relay import Links, Slow

log = logging.getLogger(__name__)

KINDS = ("kill", "pause", "partition", "slow")

#: How slow a slow link is: each frame waits this long (up to twice), and breaks the
#: connection with this probability.
SLOW = Slow(delay=0.05, reset=0.01)


class Nodes(Protocol):
    """What the nemesis acts on: the lab's processes (:class:`~vistrit.chaos.lab.Lab`)."""

    coordinators: list[str]
    workers: list[str]
    clients: list[str]

    def kill(self, name: str) -> None:
        """SIGKILL the node."""
        ...

    def restart(self, name: str) -> None:
        """Start a killed node again."""
        ...

    def pause(self, name: str) -> None:
        """SIGSTOP the node."""
        ...

    def resume(self, name: str) -> None:
        """SIGCONT the node."""
        ...


@dataclass(frozen=True)
class Fault:
    """One fault: what, on which nodes (for a partition, its sides), from when (seconds
    after the previous one healed) and for how long."""

    kind: str
    nodes: tuple[tuple[str, ...], ...]
    gap: float
    duration: float

    def describe(self) -> str:
        """The fault in words, for the log and the report."""
        if self.kind == "partition":
            return " | ".join(" ".join(side) for side in self.nodes)
        return " ".join(self.nodes[0])


@dataclass
class Schedule:
    """The faults of a run, drawn from *seed* among *kinds*."""

    kinds: tuple[str, ...]
    seed: int
    interval: float = 2.0  # the mean pause between two faults
    duration: float = 2.0  # the mean length of a fault
    _random: random.Random = field(init=False)
    _round: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"nemesis must be some of {', '.join(KINDS)}")
        self._random = random.Random(self.seed)

    def next(self, nodes: Nodes) -> Fault | None:
        """The next fault, on *nodes* (None: there are no more)."""
        if not self._round:
            self._round = list(self.kinds)
            self._random.shuffle(self._round)
        kind = self._round.pop(0)
        pick = self._random
        gap = pick.uniform(0.5, 1.5) * self.interval
        duration = pick.uniform(0.5, 1.5) * self.duration
        if kind in ("kill", "pause"):
            chosen: tuple[tuple[str, ...], ...] = (
                (pick.choice(nodes.coordinators + nodes.workers),),
            )
        elif kind == "slow":
            chosen = ((pick.choice(nodes.coordinators + nodes.workers + nodes.clients),),)
        else:
            chosen = self._sides(nodes)
        return Fault(kind, chosen, round(gap, 3), round(duration, 3))

    def _sides(self, nodes: Nodes) -> tuple[tuple[str, ...], ...]:
        everyone = nodes.coordinators + nodes.workers + nodes.clients
        pick = self._random
        if len(nodes.coordinators) > 1 and pick.random() < 0.5:  # one coordinator alone
            alone = pick.choice(nodes.coordinators)
            return ((alone,), tuple(n for n in everyone if n != alone))
        shuffled = everyone[:]
        pick.shuffle(shuffled)
        cut = pick.randint(1, len(shuffled) - 1)
        return tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:]))


class Nemesis:
    """Applies a :class:`Schedule` to *nodes* and *links* until stopped, at least one
    round (every kind once); *record* gets each fault's start and end."""

    def __init__(
        self,
        schedule: Schedule,
        nodes: Nodes,
        links: Links,
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self.schedule = schedule
        self.nodes = nodes
        self.links = links
        self.record = record
        self.applied: list[Fault] = []
        self._stopping = threading.Event()
        self._round_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nemesis")

    def start(self) -> None:
        """Begin the faults."""
        self._thread.start()

    def wait_round(self, timeout: float) -> bool:
        """Wait until every kind of fault has been applied once (and healed)."""
        return self._round_done.wait(timeout)

    def stop(self) -> None:
        """No more faults; the one under way ends now (healed, resumed, restarted)."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            fault = self.schedule.next(self.nodes)
            if fault is None or self._stopping.wait(fault.gap):
                return
            self._apply(fault)
            self._stopping.wait(fault.duration)
            self._heal(fault)
            self.applied.append(fault)
            if {f.kind for f in self.applied} >= set(self.schedule.kinds):
                self._round_done.set()

    def _apply(self, fault: Fault) -> None:
        log.info("nemesis: %s %s for %.1f s", fault.kind, fault.describe(), fault.duration)
        self.record(
            {"event": "start", "fault": fault.kind, "nodes": [list(s) for s in fault.nodes]}
        )
        target = fault.nodes[0][0]
        if fault.kind == "kill":
            self.nodes.kill(target)
        elif fault.kind == "pause":
            self.nodes.pause(target)
        elif fault.kind == "partition":
            self.links.partition(fault.nodes)
        else:
            others = self.nodes.coordinators + self.nodes.workers + self.nodes.clients
            self.links.slow([(target, other) for other in others if other != target], SLOW)

    def _heal(self, fault: Fault) -> None:
        target = fault.nodes[0][0]
        if fault.kind == "kill":
            self.nodes.restart(target)
        elif fault.kind == "pause":
            self.nodes.resume(target)
        else:
            self.links.heal()
        self.record({"event": "end", "fault": fault.kind, "nodes": [list(s) for s in fault.nodes]})
