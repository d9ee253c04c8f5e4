"""``python -m vistrit demo --election``: a real election, recorded and drawn.

Three coordinators start in this process, on free ports of 127.0.0.1, and elect a
leader; then the leader stops, as if killed, and the two others elect a new one. Every
election message each coordinator receives, and every move of each one's state machine,
is recorded through :attr:`vistrit.coordinator.cluster.Cluster.tap`; :func:`draw` turns
the recording into a sequence diagram, one line per message, in the order they arrived.
The docs' diagram of an election is this function's output, made when the docs are built.

Read next: :mod:`vistrit.logic.election`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vistrit.coordinator import Coordinator
from vistrit.coordinator.peers import ClusterConfig
from vistrit.demo import free_port
from vistrit.logic.election import rank_of
from vistrit.protocol import messages as m

#: The messages drawn; the leader's heartbeats and their acknowledgements are left out
#: (ten a second), but the first acknowledgement of each snapshot is kept.
DRAWN = (m.ElectionStart, m.ElectionVote, m.LeaderAnnounce, m.ReplicaSnapshot)

WIDTH = 22  # the columns' spacing

#: Nothing recorded for this long: the messages in flight have arrived.
QUIET = 0.2


@dataclass(frozen=True)
class Event:
    """One thing the demo saw: a message between two coordinators, or an election move."""

    sender: int
    receiver: int
    what: m.Message | str


def record(count: int = 3, timeout: float = 10.0) -> list[Event | str]:
    """Run the election, then the failover; returns what happened, with section titles."""
    ports = {rank: free_port() for rank in range(1, count + 1)}
    events: list[Event | str] = []
    lock = threading.Lock()

    def tap(sender: int, receiver: int, what: m.Message | str) -> None:
        if isinstance(what, (str, *DRAWN)):
            with lock:
                events.append(Event(sender, receiver, what))

    nodes = {}
    for rank, port in ports.items():
        peers = {r: ("127.0.0.1", p) for r, p in ports.items() if r != rank}
        node = Coordinator(
            ("127.0.0.1", port), name=f"coordinator {rank}", cluster=ClusterConfig(rank, peers)
        )
        nodes[rank] = node
    events.append(f"{count} coordinators start; each listens for a leader first")
    for node in nodes.values():
        node.start()
        assert node.cluster is not None
        node.cluster.tap = tap
    try:
        top = max(nodes)
        _wait(lambda: _settled(nodes, top), timeout)
        _wait_quiet(events, lock, timeout)  # answers still on their way arrive first
        with lock:
            events.append(f"coordinator {top} stops (as if killed)")
        nodes.pop(top).stop()
        _wait(lambda: _settled(nodes, max(nodes)), timeout)
        _wait_quiet(events, lock, timeout)
    finally:
        for node in nodes.values():
            node.stop()
    return events


def _settled(nodes: dict[int, Coordinator], leader: int) -> bool:
    for node in nodes.values():
        election = node.cluster.election if node.cluster else None
        if election is None or election.leader != leader or not election.current:
            return False
    return True


def _wait_quiet(events: list[Event | str], lock: threading.Lock, timeout: float) -> None:
    """Wait until nothing new has been recorded for a while (the last messages sent
    have arrived), at most *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            seen = len(events)
        time.sleep(QUIET)
        with lock:
            if len(events) == seen:
                return


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the coordinators did not settle on a leader in time")
        time.sleep(0.01)


def _label(message: m.Message) -> str:
    if isinstance(message, m.ElectionStart):
        return f"ElectionStart t{message.term}"
    if isinstance(message, m.ElectionVote):
        return f"ElectionVote t{message.term}"
    if isinstance(message, m.LeaderAnnounce):
        return f"LeaderAnnounce t{message.term} ({rank_of(message.leader_id)})"
    if isinstance(message, m.ReplicaSnapshot):
        return f"ReplicaSnapshot t{message.term}"
    return message.WIRE_NAME


def draw(events: list[Event | str], count: int = 3) -> str:
    """A text sequence diagram: a lifeline per coordinator, an arrow per message."""
    column = {rank: 6 + (rank - 1) * WIDTH for rank in range(1, count + 1)}
    width = column[count] + 30
    stopped: set[int] = set()

    def lifelines() -> list[str]:
        line = [" "] * width
        for rank, x in column.items():
            line[x] = " " if rank in stopped else "|"
        return line

    header = [" "] * width
    for rank, x in column.items():
        name = f"coordinator {rank}"
        start = max(0, x - len(name) // 2)
        header[start : start + len(name)] = name
    lines = ["".join(header).rstrip()]
    for event in events:
        if isinstance(event, str):
            lines.append("".join(lifelines()).rstrip())
            lines.append(f"  -- {event} --")
            if "stops" in event:
                stopped.add(int(event.split()[1]))
            continue
        line = lifelines()
        if isinstance(event.what, str):
            note = f"[{event.what}]"
            x = column[event.receiver] + 2
            line[x : x + len(note)] = note
            lines.append("".join(line).rstrip())
            continue
        a, b = column[event.sender], column[event.receiver]
        label = _label(event.what)
        low, high = min(a, b), max(a, b)
        for x in range(low + 1, high):
            line[x] = "-"
        if b > a:
            line[high - 1] = ">"
        else:
            line[low + 1] = "<"
        middle = (low + high - len(label)) // 2
        if high - low - 4 >= len(label):
            line[middle : middle + len(label)] = label
            lines.append("".join(line).rstrip())
        else:  # too long for the gap: the label goes at the end of the line
            lines.append("".join(line).rstrip() + "   " + label)
    return "\n".join(lines)
