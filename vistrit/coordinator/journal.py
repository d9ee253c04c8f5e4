"""The coordinator's journal: what it has acknowledged, on disk, so a crash cannot erase it.

With ``--data-dir DIR`` the coordinator appends to ``DIR/journal.vst`` one frame per event,
in the protocol's own frame format (so ``python -m vistrit decode`` can read it):

* a ``TaskSubmit`` when it accepts a task, **before** its ``TaskSubmitAck`` is sent;
* a ``TaskOutcome`` when a task reaches its final state (Completed, Failed, Cancelled).

Nothing else is needed: on restart a task with a submit and no outcome is simply pending
again (it may run a second time: at-least-once), and one with an outcome keeps it.

When is it on disk? ``fsync`` (the ``--fsync`` option):

* ``always`` (the default): ``fsync`` after each batch of frames, before the messages
  that depend on them (the acknowledgement) are sent. Survives the coordinator's crash
  and the machine's.
* ``batch``: ``fsync`` on the coordinator's tick, four times a second. Survives the
  coordinator's crash; a crash of the whole machine may lose the last quarter second of
  acknowledged tasks.
* ``never``: the operating system writes when it likes. Survives the coordinator's crash
  (the data is in the OS's cache once written), not the machine's.

A crash in the middle of a write leaves a torn frame at the end: its checksum (or its
length) gives it away on the next start, and the tail from there is cut off with a
warning. The file is rewritten (compacted) when it holds far more frames than the tasks
the coordinator still remembers: write a new file, ``fsync`` it, rename it over the old.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from vistrit.logic.election import TERM_LIMIT
from vistrit.protocol import FrameDecoder, Message, ProtocolError, encode_frame
from vistrit.protocol.catalogue import first_version

log = logging.getLogger(__name__)

FSYNC_MODES = ("always", "batch", "never")
FILE_NAME = "journal.vst"
TERM_FILE_NAME = "term"

#: How many journals replaced by a leader's snapshot a follower keeps (``replaced-N.vst``).
KEEP_REPLACED = 3


class Journal:
    """One append-only journal file. Not thread-safe: the coordinator's lock guards it."""

    def __init__(self, directory: Path, fsync: str = "always") -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.fsync = fsync
        self.frames = 0  # frames in the file, for deciding when to compact
        self._dirty = False
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned, closed by close()

    def replay(self) -> list[Message]:
        """Every whole frame in the file, in order; a torn or corrupt tail is cut off."""
        data = self.path.read_bytes()
        decoder = FrameDecoder()
        decoder.feed(data)
        messages: list[Message] = []
        good = 0
        try:
            while (frame := decoder.next_frame()) is not None:
                messages.append(frame.message)
                good += frame.size
        except ProtocolError as exc:
            log.warning("journal: bad frame at byte %d (%s)", good, exc)
        if good < len(data):
            log.warning(
                "journal: cutting off %d byte(s) after byte %d (a write torn by a crash)",
                len(data) - good,
                good,
            )
            self._file.close()
            with open(self.path, "r+b") as file:
                file.truncate(good)
                os.fsync(file.fileno())
            self._file = open(self.path, "ab")  # noqa: SIM115
        self.frames = len(messages)
        return messages

    def append(self, messages: Sequence[Message | bytes]) -> None:
        """Write frames (and, in ``always`` mode, fsync) before anything depends on them."""
        self.append_frames(encode_records(messages))

    def append_frames(self, frames: Sequence[bytes]) -> None:
        """:meth:`append` for records already encoded (a follower writes the leader's)."""
        self._file.write(b"".join(frames))
        self._file.flush()
        self.frames += len(frames)
        if self.fsync == "always":
            os.fsync(self._file.fileno())
        else:
            self._dirty = True

    def sync(self) -> None:
        """The ``batch`` mode's fsync, called on every tick."""
        if self._dirty and self.fsync == "batch":
            os.fsync(self._file.fileno())
        self._dirty = False

    def compact(self, live: Sequence[Message]) -> None:
        """Replace the file by *live* (what the coordinator still remembers), atomically."""
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(b"".join(encode_records(live)))
            file.flush()
            os.fsync(file.fileno())
        self._file.close()
        os.replace(temporary, self.path)
        self._sync_directory()  # the rename itself must survive a crash
        self._file = open(self.path, "ab")  # noqa: SIM115
        log.info("journal: compacted from %d to %d frames", self.frames, len(live))
        self.frames = len(live)

    def set_aside(self) -> Path | None:
        """Start an empty journal, keeping the current one beside it as
        ``replaced-N.vst`` (the newest :data:`KEEP_REPLACED`), so that what a snapshot
        replaces is never destroyed; returns that file (None if the journal was empty)."""
        self._file.close()
        kept = None
        if self.path.stat().st_size:
            kept = self.directory / f"replaced-{time.time_ns()}.vst"
            os.replace(self.path, kept)
            for old in sorted(self.directory.glob("replaced-*.vst"))[:-KEEP_REPLACED]:
                old.unlink()
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned, closed by close()
        self._sync_directory()
        self.frames = 0
        return kept

    def _sync_directory(self) -> None:
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        """Sync and close the file."""
        if not self._file.closed:
            self._file.flush()
            if self.fsync != "never":
                os.fsync(self._file.fileno())
            self._file.close()


class TermFile:
    """The newest election term a coordinator has seen, on disk (``DIR/term``), so that a
    restarted coordinator never goes back to an older term. The term itself is owned by
    the election (:mod:`vistrit.logic.election`); this only keeps it. Written to a
    temporary file, ``fsync`` ed, then renamed over the old one: never half written."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / TERM_FILE_NAME
        self._saved: int | None = None

    def load(self) -> int:
        """The term saved last (0 if none). Raises ``ValueError`` if the file is damaged."""
        if not self.path.exists():
            return 0
        text = self.path.read_text().strip()
        if text and (not text.isdigit() or int(text) > TERM_LIMIT):
            raise ValueError(f"{self.path}: not a term: {text[:40]!r}")
        self._saved = int(text or 0)
        return self._saved

    def save(self, term: int) -> None:
        """Keep *term* (nothing is written if it is the one saved last)."""
        if self._saved == term:
            return
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as file:
            file.write(f"{term}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        self._saved = term


def encode_records(records: Sequence[Message | bytes]) -> list[bytes]:
    """Journal records as frames, each in the oldest version that carries it (a record
    given as bytes is already a frame)."""
    return [r if isinstance(r, bytes) else encode_frame(r, first_version(r)) for r in records]
