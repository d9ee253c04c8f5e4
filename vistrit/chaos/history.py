"""The files of a chaos run: JSON lines, written as things happen and read back with care.

A run's directory holds (see the chaos page of the docs for every field):

* ``history.jsonl`` - what the clients did and saw, one operation a line, in the style
  Jepsen uses: ``{"time", "process", "type", "f", "task", "value"}``; ``type`` is
  ``invoke`` when an operation starts and ``ok``, ``fail`` or ``info`` (unknown) when it
  ends;
* ``faults.jsonl`` - what the nemesis did, and when;
* ``frames.jsonl`` - every frame between two nodes, as the relays passed it on;
* ``terms.jsonl`` - every coordinator's election moves (from each one's
  ``elections.log``);
* ``run.json`` - the run's parameters and nodes; ``verdict.json`` - the checker's verdict.

Times are seconds since the run began (``run.json`` has the start, as a Unix time). The
files are read back as untrusted input: :func:`read_lines` stops at the first line that is
not a JSON object, naming the file and the line.

Read next: :mod:`vistrit.chaos.relay`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
FAULTS = "faults.jsonl"
FRAMES = "frames.jsonl"
TERMS = "terms.jsonl"
RUN = "run.json"
VERDICT = "verdict.json"
REPORT = "report.html"

#: The longest line read back (a frame's bytes are cut well before this).
MAX_LINE = 1024 * 1024

#: The kinds of operation the history may hold, and how an operation can end.
OPERATIONS = ("submit", "result", "read")
TYPES = ("invoke", "ok", "fail", "info")


class HistoryError(Exception):
    """A file of a run cannot be read: the message names it, and the line."""


class JsonLines:
    """A JSON-lines file being written by several threads: each record is one line,
    stamped with its time since *origin* unless it has one, and flushed at once (a run
    that is killed keeps everything written before)."""

    def __init__(self, path: Path, origin: float) -> None:
        self.path = path
        self.origin = origin
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the run began."""
        return round(time.time() - self.origin, 6)

    def write(self, record: dict[str, Any]) -> None:
        """Append *record* (with ``time`` first)."""
        when = record.pop("time") if "time" in record else self.now()  # (0.0 is a time)
        line = json.dumps({"time": when, **record})
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the file; later writes are dropped."""
        with self._lock:
            self._file.close()


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file (none if it does not exist). Raises
    :class:`HistoryError` for a line that is too long, not JSON, or not an object."""
    records: list[dict[str, Any]] = []
    if not path.exists():
        return records
    with open(path, "rb") as file:
        for number, raw in enumerate(iter(lambda: file.readline(MAX_LINE + 1), b""), 1):
            if len(raw) > MAX_LINE:
                raise HistoryError(f"{path.name}, line {number}: longer than {MAX_LINE} bytes")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:  # (UnicodeDecodeError is one)
                raise HistoryError(f"{path.name}, line {number}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise HistoryError(f"{path.name}, line {number}: not a JSON object")
            records.append(record)
    return records


def read_json(path: Path) -> dict[str, Any]:
    """One JSON object from a file; :class:`HistoryError` if it is missing or not one."""
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise HistoryError(f"{path.name}: {exc}") from None
    if not isinstance(value, dict):
        raise HistoryError(f"{path.name}: not a JSON object")
    return value


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write one JSON object, readably."""
    path.write_text(json.dumps(value, indent=2) + "\n", "utf-8")
