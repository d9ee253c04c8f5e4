"""What a member of a cluster does with its copy of the leader's tasks: the part of what
the cluster asks of its coordinator (:class:`~vistrit.coordinator.host.Host`) that
applies the leader's records and snapshots, and, when it leads, finishes again what a
replaced copy had finished and the new one has not
(:class:`~vistrit.coordinator.recovery.Orphans`).

A mixin of :class:`~vistrit.coordinator.server.Coordinator`, kept apart so that the server
module stays about threads and connections: it works on the coordinator's core and
journal, and every method runs under the coordinator's lock.

Read next: :mod:`vistrit.coordinator.server`.
"""

from __future__ import annotations

import logging

from vistrit.coordinator import recovery
from vistrit.coordinator.core import CoordinatorCore
from vistrit.coordinator.journal import Journal, encode_records, first_bad_record
from vistrit.protocol import ProtocolError, decode_frame

log = logging.getLogger(__name__)


class CopyKeeping:
    """The coordinator's copy of the tasks, as a member of a cluster keeps it."""

    name: str
    core: CoordinatorCore | None
    journal: Journal | None
    orphans: recovery.Orphans

    def _new_core(self) -> CoordinatorCore:
        raise NotImplementedError  # the coordinator's

    def _fail(self, reason: str) -> None:
        raise NotImplementedError  # the coordinator's

    def describe(self) -> str:
        """What this coordinator holds, for the log."""
        assert self.core is not None
        store = self.core.store
        return f"{len(store.records)} task(s) ({store.count('Pending')} pending)"

    def live_records(self) -> list[bytes]:
        """Every record of what is remembered now, encoded: a snapshot for a follower."""
        assert self.core is not None
        return encode_records(self.core.live_journal())

    def replace_copy(self, records: tuple[bytes, ...], now: float, keep: bool) -> bool:
        """A follower's copy is replaced by the leader's snapshot: once every record is
        known to be sound, start from nothing (the old journal kept aside, never lost),
        then apply them; with *keep*, keep what the old copy had finished and the new
        one has not (:class:`~vistrit.coordinator.recovery.Orphans`). Under the lock."""
        bad = first_bad_record(records)
        if bad is not None:
            log.error("%s: the leader's snapshot has a bad record: %s", self.name, bad)
            return False
        old, self.core = self.core, self._new_core()
        aside = self.journal.set_aside() if self.journal is not None else None
        log.info("%s: a snapshot replaces the copy (the old journal: %s)", self.name, aside)
        if not self.apply_records(records, now):
            return False
        if (
            keep
            and old is not None
            and (kept := self.orphans.keep(old.store, self.core.store, now))
        ):
            log.warning(
                "%s: kept %d task(s) finished here and not in the new copy", self.name, kept
            )
        return True

    def adopt_orphans(self, now: float) -> None:
        """We lead: finish again the tasks kept from a replaced copy that ours has not
        finished, journaled as our own records (a follower's snapshot has them). Under the
        lock."""
        assert self.core is not None
        entries = self.orphans.adopt(self.core, now)
        if entries and self._write(encode_records([*entries, *self.core.take_journal()])):
            log.warning("%s: %d finished task(s) remembered again", self.name, len(entries) // 2)

    def _write(self, frames: list[bytes], sync: bool = True) -> bool:
        """Append *frames* to the journal, if there is one. False if it cannot be written:
        then the coordinator stops (:meth:`_fail`). Under the lock."""
        if self.journal is None:
            return True
        try:
            self.journal.append_frames(frames, sync=sync)
        except OSError as exc:
            self._fail(f"cannot write the journal {self.journal.path}: {exc}")
            return False
        return True

    def apply_records(self, records: tuple[bytes, ...], now: float) -> bool:
        """Journal the leader's records (as they are) and apply them to our copy. Under
        the lock. False if a record is bad or the journal cannot be written."""
        assert self.core is not None
        try:
            messages = [decode_frame(frame).message for frame in records]
        except ProtocolError as exc:
            log.error("%s: the leader sent a bad record: %s", self.name, exc)
            return False
        if not self._write(list(records)):
            return False
        for message in messages:
            recovery.replay(self.core, message, now)
        self.core.take_journal()  # what the copy decided for itself is the leader's to decide
        return True


__all__ = ["CopyKeeping"]
