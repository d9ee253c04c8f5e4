"""The election history: every move of this coordinator's election, with its time.

The election (:mod:`vistrit.logic.election`) keeps only its present: the role, the term,
the leader. This log keeps what happened: one :class:`Change` per move (``"timed out:
now Candidate (term 4)"``), with the leader known after it. With a data dir it is also
appended to ``DIR/elections.log``, one JSON object a line, so that a restarted
coordinator (and its dashboard) still shows the terms before it. The file is read back
with suspicion: a damaged line is skipped, and only the last :data:`KEPT` changes, from
the file's last :data:`READ_BYTES`, are kept.

Read next: :mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: The file, in the data dir.
FILE_NAME = "elections.log"

#: How many changes are kept in memory (and read back from the file).
KEPT = 500

#: How much of the end of the file is read back at start.
READ_BYTES = 256 * 1024


#: Why each event happens, in words (the dashboard shows it beside the event's name).
WHY = {
    "leader silent": "heard nothing from a leader within the leader timeout: stands",
    "challenged": "a lower-ranked coordinator stood: answers it (and stands, if it was not)",
    "answered": "a higher-ranked coordinator answered: waits for it to announce itself",
    "unanswered": "no higher-ranked coordinator answered in time: leads",
    "no announcement": "the higher-ranked one never announced itself: stands again",
    "outranked": "a higher-ranked coordinator holding every record is back: hands over",
    "newer term": "saw a newer term: an election ran without it, so it may be deposed",
    "announced": "a leader announced itself (a newer term, or a higher rank): follows it",
    "paused": "was paused past the leader timeout: steps down, as it may be deposed",
}


@dataclass(frozen=True)
class Change:
    """One move of the election: when, what happened, the role and term it led to, and
    the leader known after it (its rank; ``None``: no leader known)."""

    time: float
    event: str
    role: str
    term: int
    leader: int | None

    @classmethod
    def from_json(cls, line: str) -> Change | None:
        """A change read back from the file; ``None`` for a line that is not one."""
        try:
            data = json.loads(line)
            change = cls(
                time=float(data["time"]),
                event=str(data["event"])[:200],
                role=str(data["role"])[:40],
                term=int(data["term"]),
                leader=None if data["leader"] is None else int(data["leader"]),
            )
        except (ValueError, TypeError, KeyError, OverflowError):
            return None
        return change if 0 <= change.term < 2**63 else None


class ElectionLog:
    """The changes, oldest first, and (with a data dir) the file they are appended to."""

    def __init__(self, directory: Path | None) -> None:
        self.path = Path(directory) / FILE_NAME if directory is not None else None
        self.changes: deque[Change] = deque(maxlen=KEPT)
        if self.path is not None:
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            with open(path, "rb") as file:
                size = file.seek(0, 2)
                file.seek(max(0, size - READ_BYTES))
                data = file.read(READ_BYTES)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the election history %s: %s", path, exc)
            return
        lines = data.decode("utf-8", "replace").splitlines()
        if len(data) == READ_BYTES:
            lines = lines[1:]  # the first line was cut
        changes = [Change.from_json(line) for line in lines]
        self.changes.extend(change for change in changes if change is not None)
        skipped = changes.count(None)
        if skipped:
            log.warning("%s: skipped %d damaged line(s)", path, skipped)

    def record(self, change: Change) -> None:
        """Keep *change* (and append it to the file; a failure to is logged, not raised:
        the history is for people, and the election must go on)."""
        self.changes.append(change)
        if self.path is None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(asdict(change)) + "\n")
        except OSError as exc:
            log.warning("cannot append to the election history %s: %s", self.path, exc)
