"""The lab's network: a relay in front of each coordinator, and the faults on its links.

Every node of a chaos run reaches a coordinator only through that coordinator's
:class:`LinkRelay` (the coordinators' ``--peers`` and the workers' and clients'
``--coordinator`` name the relays). A relay reads the first frame of each connection, a
``Handshake``, to learn who connects (the ``name`` in its ``NodeInfo``); from then on the
connection is the *link* between that node and the coordinator, and each frame on it, in
either direction, passes through :meth:`Links.hold` and :meth:`Links.slowness` before it is
sent on:

* **cut** (a partition): the frame waits until the link heals, as TCP holds bytes
  while a cable is out. Neither end hears anything; a node's own timeouts decide
  what happens (a heartbeat missed, an election, a reconnection). When the cut heals,
  what was held flows again, late.
* **slow**: each frame waits a delay first; and with a small probability the link
  breaks, both ends of the connection closed (what a flaky path does to a TCP
  connection).

Each frame sent on is handed to ``on_frame`` with the time it was read and the time it was
sent, so the report can draw it as an arrow between two nodes' lines.

Read next: :mod:`vistrit.chaos.nemesis`.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vistrit.protocol import ProtocolError
from vistrit.protocol import messages as m
from vistrit.protocol.frame import decode_frame, split_frames
from vistrit.protocol.jsonform import to_json_value
from vistrit.transport import Connection, ConnectionClosed, FrameServer, connect

log = logging.getLogger(__name__)

#: How long a new connection has to send its first frame before the relay gives up on it.
FIRST_FRAME_TIMEOUT = 10.0

#: The most bytes of a frame recorded (the report's byte table shows that much).
KEPT_BYTES = 4096

#: The longest decoded summary recorded for a frame.
SUMMARY_CHARS = 240

#: Who an unidentified connection is (its first frame was not a Handshake with a name).
UNKNOWN = "?"


@dataclass(frozen=True)
class Slow:
    """A slow link: *delay* seconds per frame (up to twice that, at random), and the chance
    that a frame breaks the connection instead."""

    delay: float
    reset: float


class Links:
    """What is wrong with the network now: which nodes are cut off from which, and which
    links are slow. Shared by every relay; changed by the nemesis. Thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._side: dict[str, int] = {}  # during a partition: node -> its side
        self._slow: dict[frozenset[str], Slow] = {}
        self._stopping = False

    def partition(self, sides: Iterable[Iterable[str]]) -> None:
        """Cut every link between nodes on different *sides* (nodes on no side keep theirs)."""
        with self._changed:
            self._side = {node: number for number, side in enumerate(sides) for node in side}
            self._changed.notify_all()

    def slow(self, pairs: Iterable[tuple[str, str]], slow: Slow) -> None:
        """Make the links between each pair of nodes slow."""
        with self._changed:
            self._slow = {frozenset(pair): slow for pair in pairs}

    def heal(self) -> None:
        """Every link works again; held frames flow."""
        with self._changed:
            self._side, self._slow = {}, {}
            self._changed.notify_all()

    def stop(self) -> None:
        """The run is over: release every held frame (it is then dropped)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    def cut(self, a: str, b: str) -> bool:
        """Whether the link between *a* and *b* is cut now."""
        with self._changed:
            return self._is_cut(a, b)

    def _is_cut(self, a: str, b: str) -> bool:
        side_a, side_b = self._side.get(a), self._side.get(b)
        return side_a is not None and side_b is not None and side_a != side_b

    def hold(self, a: str, b: str) -> bool:
        """Wait while the link between *a* and *b* is cut; False if the run ended first."""
        with self._changed:
            while self._is_cut(a, b) and not self._stopping:
                self._changed.wait()
            return not self._stopping

    def slowness(self, a: str, b: str) -> Slow | None:
        """How slow the link between *a* and *b* is now, if it is."""
        with self._changed:
            return self._slow.get(frozenset((a, b)))


def describe(frame: bytes) -> tuple[str, str]:
    """A frame's message name and a one-line summary of its fields (JSON, cut short)."""
    try:
        message = decode_frame(frame).message
    except ProtocolError as exc:
        return "(bad frame)", str(exc)[:SUMMARY_CHARS]
    text = json.dumps(to_json_value(message), separators=(",", ":"))
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1] + "…"
    return message.WIRE_NAME, text


def who(frame: bytes) -> str:
    """The node a connection comes from, by its first frame (``?`` if it does not say)."""
    try:
        message = decode_frame(frame).message
    except ProtocolError:
        return UNKNOWN
    if isinstance(message, m.Handshake) and message.node_info.name:
        return message.node_info.name[:40]
    return UNKNOWN


FrameSink = Callable[[dict[str, Any]], None]


class LinkRelay:
    """The relay in front of coordinator *node*: ``start()``, ``address``, ``stop()``."""

    def __init__(
        self,
        node: str,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        links: Links,
        on_frame: FrameSink,
        clock: Callable[[], float],
        seed: int = 0,
    ) -> None:
        self.node = node
        self.upstream = upstream
        self.links = links
        self.on_frame = on_frame
        self.clock = clock  # seconds since the run began
        self._random = random.Random(seed)
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Connection] = set()  # the connections relayed now
        self._server = FrameServer(listen, self._serve)

    @property
    def address(self) -> tuple[str, int]:
        """Where the relay listens."""
        return self._server.address

    def start(self) -> None:
        """Accept connections, each relayed by threads of its own."""
        self._server.start(name=f"relay {self.node}")

    def stop(self) -> None:
        """Close every connection and join every thread."""
        self._stopping.set()
        with self._lock:
            open_now = list(self._open)
        for connection in open_now:
            connection.shutdown()
        self._server.stop()

    def _serve(self, inside: Connection) -> None:
        number = next(self._numbers)
        first, rest = self._first_frame(inside)
        if first is None:
            return
        peer = who(first)
        if not self.links.hold(peer, self.node):  # a partition holds a new connection too
            return
        try:
            outside = connect(self.upstream, name=f"relay {peer}->{self.node}")
        except OSError:  # the coordinator is down: so is the connection
            return
        back = threading.Thread(
            target=self._pump,
            args=(outside, inside, self.node, peer, number, b""),
            name=f"relay {self.node}->{peer}",
        )
        with self._lock:
            self._open.update((inside, outside))
        back.start()
        try:
            if self._send(first, inside, outside, peer, self.node, number, self.clock()):
                self._pump(inside, outside, peer, self.node, number, rest)
        except ConnectionClosed:  # the coordinator went away before the first frame
            pass
        finally:
            outside.shutdown()
            inside.shutdown()
            back.join()  # only then closed: no thread waits on them any more
            with self._lock:
                self._open.difference_update((inside, outside))
            outside.close()
            inside.close()

    def _first_frame(self, inside: Connection) -> tuple[bytes | None, bytes]:
        pending = b""
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
        while not self._stopping.is_set():
            data = inside.receive_raw(max(0.0, deadline - time.monotonic()))
            if not data:  # closed, or silent too long
                return None, b""
            frames, pending = split_frames(pending + data)
            if frames:
                return frames[0], b"".join(frames[1:]) + pending
        return None, b""

    def _pump(
        self,
        source: Connection,
        target: Connection,
        sender: str,
        receiver: str,
        number: int,
        pending: bytes,
    ) -> None:
        """Pass frames from *source* to *target* through the link's faults."""
        try:
            while not self._stopping.is_set():
                frames, pending = split_frames(pending)
                for frame in frames:
                    if not self._send(frame, source, target, sender, receiver, number, None):
                        return
                data = source.receive_raw()
                if not data:
                    return
                pending += data
        except ConnectionClosed:
            pass
        finally:
            target.shutdown()  # the other direction's thread wakes, and ends

    def _send(
        self,
        frame: bytes,
        source: Connection,
        target: Connection,
        sender: str,
        receiver: str,
        number: int,
        read: float | None,
    ) -> bool:
        """One frame through the link: held while cut, delayed while slow, maybe the link
        breaks. Returns False when the connection is over."""
        read = self.clock() if read is None else read
        if not self.links.hold(sender, receiver):
            return False
        slow = self.links.slowness(sender, receiver)
        if slow is not None:
            if self._stopping.wait(slow.delay * (1 + self._random.random())):
                return False
            if self._random.random() < slow.reset:
                self.on_frame({"event": "reset", "from": sender, "to": receiver, "conn": number})
                source.shutdown()
                return False
        target.send_raw(frame)
        kind, summary = describe(frame)
        record = {"time": self.clock(), "sent": read, "from": sender, "to": receiver}
        record.update(conn=number, type=kind, size=len(frame), summary=summary)
        self.on_frame({**record, "bytes": frame[:KEPT_BYTES].hex()})
        return True
