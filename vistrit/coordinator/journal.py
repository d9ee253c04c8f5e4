"""The coordinator's journal: what it has acknowledged, on disk, so a crash cannot erase it.

With ``--data-dir DIR`` the coordinator appends to ``DIR/journal.vst`` one frame per event,
in the protocol's own frame format (so ``python -m vistrit decode`` can read it):

* a ``TaskSubmit`` when it accepts a task, **before** its ``TaskSubmitAck`` is sent;
* a ``TaskOutcome`` when a task reaches its final state (Completed, Failed, Cancelled);
* a ``TaskOutcomeAck`` when it lets go of large payloads whose client has them
  (:mod:`vistrit.coordinator.release`).

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
warning. Damage anywhere else (a flipped byte, a bad disk block) is not a crash's doing:
the coordinator refuses to start, naming the file and the offset; ``--repair`` keeps every
intact record after the damage (frames are found again by their magic and checksum) and
saves the damaged bytes beside the journal. A folder that once held a journal
(``journal.created``) and no longer does is an error too, never a silent fresh start.

The file is rewritten (compacted) when it holds far more frames than the tasks the
coordinator still remembers: write a new file, ``fsync`` it, rename it over the old.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vistrit.logic.election import TERM_LIMIT
from vistrit.protocol import Message, ProtocolError, decode_frame, encode_frame
from vistrit.protocol.catalogue import first_version
from vistrit.protocol.frame import (
    CHECKSUM_SIZE,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAGIC_BYTES,
    MAX_PAYLOAD,
)

log = logging.getLogger(__name__)

FSYNC_MODES = ("always", "batch", "never")
FILE_NAME = "journal.vst"
TERM_FILE_NAME = "term"

#: Compact the journal only once it holds this many more frames than needed.
COMPACT_SLACK = 1000

#: A file written beside the first journal of a folder: if it is there and the journal is
#: not, the journal was lost, and the coordinator says so instead of starting empty.
MARKER_NAME = "journal.created"

#: How many journals replaced by a leader's snapshot a follower keeps (``replaced-N.vst``).
KEEP_REPLACED = 3


def first_bad_record(records: Sequence[bytes]) -> ProtocolError | None:
    """Why the first of *records* that is not a sound frame is not (None: all are)."""
    for frame in records:
        try:
            decode_frame(frame)
        except ProtocolError as exc:
            return exc
    return None


class JournalError(Exception):
    """The journal cannot be used: the message names the path and the reason."""


class JournalCorrupted(JournalError):
    """Damage before intact records: not a torn write; named by file and offset."""


@dataclass
class Scan:
    """A journal's bytes, read frame by frame: the intact frames, the damaged ranges that
    intact frames follow, and where a torn tail starts (the length, if there is none)."""

    frames: list[bytes]
    messages: list[Message]
    offsets: list[int]
    damaged: list[tuple[int, int]]
    tail: int

    def intact_after(self, offset: int) -> int:
        """How many intact frames start after *offset*."""
        return sum(1 for start in self.offsets if start > offset)


def scan(data: bytes) -> Scan:
    """Read *data* frame by frame; after damage, find the next intact frame by its magic
    (and its checksum: a frame is intact only if it decodes)."""
    frames: list[bytes] = []
    messages: list[Message] = []
    offsets: list[int] = []
    damaged: list[tuple[int, int]] = []
    pos, bad = 0, None
    while pos < len(data):
        intact = _intact_frame_at(data, pos)
        if intact is not None:
            if bad is not None:
                damaged.append((bad, pos))
                bad = None
            end, message = intact
            frames.append(data[pos:end])
            messages.append(message)
            offsets.append(pos)
            pos = end
            continue
        if bad is None:
            bad = pos
        pos = data.find(MAGIC_BYTES, pos + 1)
        if pos < 0:
            break
    return Scan(frames, messages, offsets, damaged, bad if bad is not None else len(data))


def _intact_frame_at(data: bytes, pos: int) -> tuple[int, Message] | None:
    """The end and the message of the intact frame that starts at *pos*, or None."""
    if len(data) - pos < HEADER_SIZE:
        return None
    magic, _, _, length = HEADER.unpack_from(data, pos)
    end: int = pos + HEADER_SIZE + length + CHECKSUM_SIZE
    if magic != MAGIC or length > MAX_PAYLOAD or end > len(data):
        return None
    try:
        return end, decode_frame(data[pos:end]).message
    except ProtocolError:
        return None


class Journal:
    """One append-only journal file. The coordinator's lock guards it, but for
    :meth:`flush_to_disk`, which another thread may call while the next frames are written
    (group commit: :mod:`vistrit.coordinator.syncing`)."""

    def __init__(self, directory: Path, fsync: str = "always", repair: bool = False) -> None:
        """Open (or create) the journal in *directory*. Raises :class:`JournalError` if the
        folder cannot be used, or if it once held a journal that is gone."""
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.fsync = fsync
        self.repair = repair
        self.frames = 0  # frames in the file, for deciding when to compact
        self._dirty = False
        #: Held while the file is replaced, and while :meth:`flush_to_disk` uses it.
        self._swap = threading.Lock()
        marker = self.directory / MARKER_NAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if marker.exists() and not self.path.exists():
                raise JournalError(
                    f"{self.path} is missing, but {self.directory} held a journal "
                    f"({MARKER_NAME} is there): restore it, or empty the folder to start afresh"
                )
            self._file = open(self.path, "ab")  # noqa: SIM115 - owned, closed by close()
            if not marker.exists():
                marker.write_text("this folder holds a Vistrit coordinator's journal\n")
                self._sync_directory()
        except OSError as exc:
            raise JournalError(f"cannot use {self.directory} for the journal: {exc}") from None

    def replay(self) -> list[Message]:
        """Every intact record in the file, in order.

        A torn tail (the last write, cut short by a crash: no intact record after it) is
        cut off with a warning. Damage *before* intact records is not a crash's doing:
        the coordinator refuses to start (:class:`JournalCorrupted`, naming the file and
        the offset), unless started with ``repair``, which keeps every intact record (the
        frames are found again by their magic and checksum) and sets the damaged bytes
        aside in ``damaged-N.bin``.
        """
        data = self.path.read_bytes()
        found = scan(data)
        if found.damaged and not self.repair:
            start, end = found.damaged[0]
            raise JournalCorrupted(
                f"{self.path}: {end - start} damaged byte(s) at offset {start}, before "
                f"{found.intact_after(start)} intact record(s); start with --repair to keep "
                "every intact record (the damaged bytes are set aside), or restore the file"
            )
        if found.damaged or found.tail < len(data):
            self._rewrite(data, found)
        self.frames = len(found.frames)
        return found.messages

    def _rewrite(self, data: bytes, found: Scan) -> None:
        """Keep the intact records only: a torn tail is cut off; with ``repair``, damaged
        ranges are saved beside the journal first."""
        if found.damaged:
            aside = self.directory / f"damaged-{time.time_ns()}.bin"
            ranges = [*found.damaged, (found.tail, len(data))]
            aside.write_bytes(b"".join(data[start:end] for start, end in ranges))
            log.warning(
                "journal: repaired %s: %d damaged range(s) saved in %s; %d record(s) kept",
                self.path,
                len(found.damaged),
                aside,
                len(found.frames),
            )
            self._replace(b"".join(found.frames))
            return
        log.warning(
            "journal: cutting off %d byte(s) after byte %d (a write torn by a crash)",
            len(data) - found.tail,
            found.tail,
        )
        with self._swap:
            self._file.close()
            with open(self.path, "r+b") as file:
                file.truncate(found.tail)
                os.fsync(file.fileno())
            self._file = open(self.path, "ab")  # noqa: SIM115

    def append(self, messages: Sequence[Message | bytes]) -> None:
        """Write frames (and, in ``always`` mode, fsync) before anything depends on them."""
        self.append_frames(encode_records(messages))

    def append_frames(self, frames: Sequence[bytes], sync: bool = True) -> None:
        """:meth:`append` for records already encoded (a follower writes the leader's).
        Without *sync*, the ``always`` mode's ``fsync`` is left to :meth:`flush_to_disk`."""
        self._file.write(b"".join(frames))
        self._file.flush()
        self.frames += len(frames)
        if self.fsync == "always" and sync:
            os.fsync(self._file.fileno())
        elif self.fsync != "always":
            self._dirty = True

    def flush_to_disk(self) -> None:
        """``fsync`` what was written so far, from a thread other than the writer's."""
        with self._swap:
            if not self._file.closed:
                os.fsync(self._file.fileno())

    def sync(self) -> None:
        """The ``batch`` mode's fsync, called on every tick."""
        if self._dirty and self.fsync == "batch":
            os.fsync(self._file.fileno())
        self._dirty = False

    def compact(self, live: Sequence[Message]) -> None:
        """Replace the file by *live* (what the coordinator still remembers), atomically."""
        self._replace(b"".join(encode_records(live)))
        log.info("journal: compacted from %d to %d frames", self.frames, len(live))
        self.frames = len(live)

    def compact_if_bloated(self, remembered: int, live: Callable[[], list[Message]]) -> None:
        """Rewrite the file with *live* when it holds far more frames than the *remembered*
        tasks need (twice their two frames each, plus :data:`COMPACT_SLACK`)."""
        if self.frames > 2 * (2 * remembered) + COMPACT_SLACK:
            self.compact(live())

    def set_aside(self) -> Path | None:
        """Start an empty journal, keeping the current one beside it as
        ``replaced-N.vst`` (the newest :data:`KEEP_REPLACED`), so that what a snapshot
        replaces is never destroyed; returns that file (None if the journal was empty)."""
        with self._swap:
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

    def _replace(self, content: bytes) -> None:
        """Replace the file by *content*, atomically: a new file, fsync, rename."""
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        with self._swap:
            self._file.close()
            os.replace(temporary, self.path)
            self._sync_directory()  # the rename itself must survive a crash
            self._file = open(self.path, "ab")  # noqa: SIM115

    def _sync_directory(self) -> None:
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        """Sync and close the file."""
        with self._swap:
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
