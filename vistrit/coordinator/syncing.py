"""Group commit: the journal's ``fsync`` made off the coordinator's lock.

With ``--fsync always`` an answer that depends on a record (a ``TaskSubmitAck``, a
``TaskOutcome`` pushed to a client) must not leave before the record is on disk. The
simple way is to ``fsync`` right after writing, under the coordinator's lock, as the
journal of a follower still does. But an ``fsync`` takes a while (about 120-200 µs on an
SSD-backed virtual disk, far longer on a spinning one), and while one thread waits for it
under the lock, nothing else can be decided: not the next worker's result, not a
follower's acknowledgement.

So a coordinator that answers clients (one alone, or a leader) writes its records under
the lock and leaves the ``fsync`` to a :class:`Syncer`: one thread that, whenever records
were written since its last ``fsync``, makes one for all of them (the databases' *group
commit*), outside the lock, then lets go what waited for it. Meanwhile:

* what depends on the records waits, in the same queue that holds answers for the
  followers (:mod:`vistrit.coordinator.waiting`: a coordinator without followers has a
  :class:`~vistrit.logic.replication.Replicator` of none, whose answers wait for its disk
  alone), so every node still receives its messages in the order they were decided;
* an assignment whose task's submission is already safe goes at once: a worker never
  waits for the ``fsync`` of its own last result;
* a leader sends the records to its followers before its own ``fsync``: the three disks
  write at the same time, and an answer waits for the slowest.

What it buys (``docs/performance.rst``, "Group commit"): W1 with a journal and ``--fsync
always`` went from about 3,700 to 5,300-5,900 tasks/s, and with three coordinators from
about 2,200 to 3,400-3,900.

What an acknowledgement means does not change (``docs/durability.rst``). A record that
reaches a follower, or the disk, and whose answer never leaves (the leader crashed in
between) is a task nobody was told about: it runs, at least once, as any task does whose
acknowledgement was lost. An ``fsync`` that fails stops the coordinator, as a failed write
does: what waited for it is never sent.

Read next: :mod:`vistrit.coordinator.cluster`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from vistrit.coordinator.core import Outbox
from vistrit.coordinator.journal import Journal
from vistrit.coordinator.waiting import Answers
from vistrit.logic.replication import Replicator
from vistrit.logic.store import TaskStore


class Leading(Protocol):
    """A coordinator's cluster, as the syncer sees it: the answers it holds while leading."""

    answers: Answers | None


class Syncer:
    """The thread that makes the journal's ``fsync`` for everything written since its last
    one, and tells the coordinator (see the module docstring). Every method but
    :meth:`start` and :meth:`stop` is called under the coordinator's lock."""

    def __init__(
        self,
        journal: Journal,
        lock: threading.Lock,
        name: str,
        post: Callable[[Outbox], None],
        failed: Callable[[str], None],
        cluster: Leading | None = None,
    ) -> None:
        self.journal = journal
        self._lock = lock
        self._post = post  # sends what the fsync released, under the lock
        self._failed = failed  # stops the coordinator if an fsync fails, under the lock
        self._due = threading.Condition(lock)
        self._written: tuple[Answers, int] | None = None  # the newest write not yet synced
        self._stopping = False
        #: The coordinator's cluster, if it has one: while it leads, its answers wait.
        self.cluster = cluster
        #: What a coordinator without a cluster holds for its disk (a leader's answers wait
        #: in its cluster's :class:`Answers`, for its disk and its followers).
        self.alone = Answers(Replicator(timeout=0.0, disk=True)) if cluster is None else None
        self._thread = threading.Thread(target=self._run, name=f"{name} fsync", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the ``fsync`` it is making, if any). Not under the lock."""
        with self._lock:
            self._stopping = True
            self._due.notify()
        if self._thread.is_alive():
            self._thread.join()

    def commit_alone(
        self, frames: int, outbox: Outbox, store: TaskStore, now: float
    ) -> list[Outbox]:
        """A coordinator without followers wrote *frames* records for a batch: number them,
        have them synced, and return what may go now (the rest waits for the disk)."""
        answers = self.alone
        assert answers is not None  # (a coordinator of a cluster commits through it)
        if frames:
            answers.replicator.record(frames, now)
            self.written(answers, answers.replicator.index)
        return answers.commit(outbox, store, bool(frames))

    def written(self, answers: Answers, index: int) -> None:
        """Records up to *index* (as *answers*' replicator numbers them) were written: the
        next ``fsync`` covers them."""
        self._written = (answers, index)
        self._due.notify()

    def _run(self) -> None:
        while (due := self._next()) is not None:
            try:
                self.journal.flush_to_disk()  # the lock is free meanwhile
            except OSError as exc:
                with self._lock:
                    self._failed(f"cannot fsync the journal {self.journal.path}: {exc}")
                return
            with self._lock:
                self._synced(*due)

    def _synced(self, answers: Answers, index: int) -> None:
        """The ``fsync`` returned: send what waited for it. Under the lock."""
        current = self.alone if self.cluster is None else self.cluster.answers
        if answers is current:  # (a deposed leader's answers were dropped with its term)
            self._post([sent for outbox in answers.stored(index) for sent in outbox])

    def _next(self) -> tuple[Answers, int] | None:
        """Wait until something was written (or the coordinator stops: None)."""
        with self._due:
            self._due.wait_for(lambda: self._written is not None or self._stopping)
            if self._stopping:
                return None
            due, self._written = self._written, None
            return due


__all__ = ["Syncer"]
