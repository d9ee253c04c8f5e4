"""The wire tracer: a relay that shows every frame passing through it, field by field.

``python -m vistrit trace --listen 127.0.0.1:7879 --upstream 127.0.0.1:7878`` listens on
one address and, for each connection it accepts, opens one to the upstream coordinator.
Bytes are relayed unchanged in both directions, as soon as they arrive; on the side, each
direction's bytes are cut into frames (:func:`~vistrit.protocol.frame.split_frames`) and
every frame is annotated (:func:`~vistrit.protocol.annotate_frame`) and handed to the
``on_frame`` callback - the CLI prints it as a byte table. A frame that breaks the
protocol is reported with its error; the bytes are still relayed, since the tracer
watches and never judges.

Point a worker or a client at the tracer's address instead of the coordinator's to see
its conversation.

Read next: :mod:`vistrit.demo`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vistrit.protocol import ProtocolError, Span, annotate_frame
from vistrit.protocol.frame import split_frames
from vistrit.transport import Connection, ConnectionClosed, FrameServer, connect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TracedFrame:
    """One frame seen by the tracer."""

    connection: int  # numbered in the order connections were accepted
    direction: str  # "->" towards the upstream coordinator, "<-" back from it
    data: bytes
    spans: list[Span]
    error: ProtocolError | None

    @property
    def message(self) -> str:
        """The message's name, as the header's type byte gives it."""
        for span in self.spans:
            if span.field == "type":
                return span.value.split("= ", 1)[-1]
        return "?"


class TraceRelay:
    """The relay. For callers: ``start()``, ``stop()``, ``address``."""

    def __init__(
        self,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        on_frame: Callable[[TracedFrame], None],
    ) -> None:
        self.upstream = upstream
        self.on_frame = on_frame
        self._server = FrameServer(listen, self._relay)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """The address the relay listens on."""
        return self._server.address

    def start(self) -> None:
        """Listen, and relay each connection in threads of its own."""
        self._server.start(name="trace accept")
        log.info("trace: listening on %s:%d, relaying to %s:%d", *self.address, *self.upstream)

    def stop(self) -> None:
        """Close every connection and join every thread."""
        self._server.stop()

    def _relay(self, inside: Connection) -> None:
        with self._lock:
            self._count += 1
            number = self._count
        try:
            outside = connect(self.upstream, name=f"trace {number} upstream")
        except OSError as exc:
            log.warning("trace: connection %d: upstream unreachable: %s", number, exc)
            return
        back = threading.Thread(
            target=self._pump, args=(outside, inside, number, "<-"), name=f"trace {number} <-"
        )
        back.start()
        try:
            self._pump(inside, outside, number, "->")
        finally:
            outside.close()
            inside.close()
            back.join()

    def _pump(self, source: Connection, target: Connection, number: int, direction: str) -> None:
        """Relay bytes from *source* to *target*, reporting each whole frame on the way."""
        pending = b""
        watching = True  # after a bad frame, relay without parsing
        try:
            while True:
                data = source.receive_raw()
                if not data:
                    break
                target.send_raw(data)
                if not watching:
                    continue
                frames, pending = split_frames(pending + data)
                for frame in frames:
                    watching = self._report(number, direction, frame) and watching
        except ConnectionClosed:
            pass
        finally:
            target.close()

    def _report(self, number: int, direction: str, frame: bytes) -> bool:
        try:
            traced = TracedFrame(number, direction, frame, annotate_frame(frame), None)
        except ProtocolError as exc:
            traced = TracedFrame(number, direction, frame, list(exc.spans), exc)
        try:
            self.on_frame(traced)
        except Exception:  # a thread boundary: the callback's failure must not stop the relay
            log.exception("trace: the frame callback failed")
        return traced.error is None
