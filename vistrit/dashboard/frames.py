"""The dashboard's frame view: a sample of the frames a coordinator sends and receives.

The coordinator hands every batch of messages it handles, and every batch it queues for
a peer, to its ``frame_tap`` (under its lock). :class:`FrameSampler` keeps at most
:data:`PER_SECOND` of them a second, the last :data:`KEPT` in all, each encoded as the
frame that carries it on that peer's connection (the encoding is canonical: these are
the bytes that crossed the wire, less TLS). A frame's byte table is made only when it is
asked for, by the same annotator as the tracer's and the docs' tables.

Read next: :mod:`vistrit.dashboard.views`.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vistrit.protocol import annotate_frame, encode_frame
from vistrit.protocol import messages as m
from vistrit.protocol.catalogue import frame_version

#: How many sampled frames are kept.
KEPT = 300

#: How many frames a second are sampled, at most (the first ones of each second).
PER_SECOND = 20

#: The most bytes of a frame shown in its byte table (a large payload shows its start).
SHOWN_BYTES = 64 * 1024


@dataclass(frozen=True)
class SampledFrame:
    """One frame: its number, when, which way, the peer, and its bytes."""

    number: int
    time: float
    direction: str  # "in": from the peer; "out": to it
    peer: str
    message: str  # its name, as the protocol pages give it
    data: bytes

    def summary(self) -> dict[str, Any]:
        """The frame for a list: no bytes, no byte table."""
        return {
            "number": self.number,
            "time": self.time,
            "direction": self.direction,
            "peer": self.peer,
            "type": self.message,
            "version": self.data[4],
            "size": len(self.data),
        }

    def table(self) -> dict[str, Any]:
        """The frame with its byte table: every span, and the bytes in hex."""
        shown = self.data[:SHOWN_BYTES]
        spans = annotate_frame(self.data)
        return {
            **self.summary(),
            "hex": shown.hex(),
            "truncated": len(self.data) > len(shown),
            "spans": [
                {
                    "offset": s.offset,
                    "length": s.length,
                    "field": s.field,
                    "wire_type": s.wire_type,
                    "value": s.value[:500],
                }
                for s in spans
            ],
        }


class FrameSampler:
    """The sample. ``tap`` is what the coordinator calls; ``frames`` and ``frame`` read."""

    def __init__(
        self, name_of: Callable[[uuid.UUID], tuple[str, int] | None], clock: Callable[[], float]
    ) -> None:
        self._name_of = name_of  # peer id -> (name, agreed version), or None if gone
        self._clock = clock
        self._frames: deque[SampledFrame] = deque(maxlen=KEPT)
        self._numbers = itertools.count(1)
        self._second = 0
        self._taken = 0
        self._lock = threading.Lock()

    def tap(self, direction: str, peer_id: uuid.UUID, batch: list[m.Message]) -> None:
        """A batch in or out: keep its first frames, while this second's share lasts."""
        now = self._clock()
        if int(now) != self._second:
            self._second, self._taken = int(now), 0
        if self._taken >= PER_SECOND:
            return
        peer = self._name_of(peer_id)
        if peer is None:
            return
        name, version = peer
        with self._lock:
            for message in batch[: PER_SECOND - self._taken]:
                data = encode_frame(message, frame_version(message, version))
                number = next(self._numbers)
                sampled = SampledFrame(number, now, direction, name, message.WIRE_NAME, data)
                self._frames.append(sampled)
                self._taken += 1

    def frames(self, after: int = 0) -> list[dict[str, Any]]:
        """The kept frames numbered above *after*, oldest first, without their bytes."""
        with self._lock:
            return [f.summary() for f in self._frames if f.number > after]

    def frame(self, number: int) -> dict[str, Any] | None:
        """Frame *number* with its byte table; ``None`` if it is not kept (any more)."""
        with self._lock:
            found = next((f for f in self._frames if f.number == number), None)
        return found.table() if found is not None else None
