"""Failure detection and timeouts: the coordinator's clocks on its workers and tasks.

A distributed system cannot tell a dead peer from a slow one; it can only stop waiting.
These are the coordinator's rules for when to stop waiting, each a deadline:

=======================  ====================================================================
rule                     what happens when it passes
=======================  ====================================================================
silent worker            a worker not heard from for ``heartbeat_timeout`` is declared dead:
                         its tasks go back to the queue (a *heartbeat failure detector*)
attempt deadline         an attempt running for longer than its task's ``timeout_seconds``
                         fails (and its worker is told to stop it)
assignment deadline      an assignment not acknowledged within ``heartbeat_timeout`` is
                         taken back, as if refused, so no task is stuck in Scheduled
retry release            a failed attempt is retried only after a :class:`~vistrit.logic.
                         backoff.Backoff` pause, so a failing task does not spin
poison rule              a task whose running attempts lost more than ``max_lost_workers``
                         workers is failed: it is probably what kills them
=======================  ====================================================================

:class:`Liveness` keeps the deadlines in heaps (the soonest first, so each tick looks
only at what is due) and says what is due at ``now``; the assignment deadlines, which all
have the same timeout, in the order they were sent, so that a task that finishes leaves
at once. It knows task and worker ids, not the tasks themselves: the coordinator's core
(:mod:`vistrit.coordinator.core`) checks that a due deadline still matters (the attempt
may have finished meanwhile) and applies it to the task store.

This module never touches sockets, threads, clocks or logging: time is passed in as
``now``, randomness as a function. Read next: :mod:`vistrit.logic.election`.
"""

from __future__ import annotations

import heapq
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

from vistrit.defaults import DEFAULT_POLICY, Policy
from vistrit.logic.backoff import Backoff
from vistrit.logic.registry import WorkerEntry


class Liveness:
    """The coordinator's deadlines (see the module docstring). Not thread-safe: the
    coordinator calls it under its lock."""

    def __init__(
        self, policy: Policy = DEFAULT_POLICY, random: Callable[[], float] | None = None
    ) -> None:
        self.policy = policy
        self.retry_backoff = Backoff(policy.retry_backoff, policy.retry_backoff_max)
        self._random = random
        # Each heap entry starts with its deadline; the task's sequence number breaks ties
        # in submission order (and keeps ids from ever being compared).
        self._attempts: list[tuple[float, int, uuid.UUID]] = []
        #: Assignments awaiting their worker's word, by task, in the order they were sent:
        #: with one timeout for all, that is deadline order (a clock set back delays a
        #: deadline by as much). A finished task leaves at once (:meth:`settled`), instead
        #: of holding about 130 bytes until its deadline, as a heap entry did.
        self._assignments: OrderedDict[uuid.UUID, tuple[float, uuid.UUID]] = OrderedDict()
        self._retries: list[tuple[float, int, uuid.UUID]] = []

    # -- workers ----------------------------------------------------------------------------

    def silent(self, workers: Iterable[WorkerEntry], now: float) -> list[uuid.UUID]:
        """The workers not heard from for longer than the heartbeat timeout. A worker
        that never heartbeat (the reference CLI) is not a worker, and never silent."""
        timeout = self.policy.heartbeat_timeout
        return [w.id for w in workers if w.eligible and now - w.last_seen > timeout]

    def is_poison(self, lost_workers: int) -> bool:
        """Has a task lost so many workers while running that it is to blame?"""
        return lost_workers > self.policy.max_lost_workers

    # -- attempts ---------------------------------------------------------------------------

    def attempt_started(
        self, task_id: uuid.UUID, sequence: int, timeout: int, now: float
    ) -> float | None:
        """An attempt began running; returns its deadline (None: *timeout* 0, no limit)."""
        if not timeout:
            return None
        deadline = now + timeout
        heapq.heappush(self._attempts, (deadline, sequence, task_id))
        return deadline

    def overdue_attempts(self, now: float) -> list[tuple[uuid.UUID, float]]:
        """``(task, deadline)`` for every attempt deadline passed by *now*. The caller
        ignores a deadline that is no longer its task's (a later attempt has its own)."""
        due = []
        while self._attempts and self._attempts[0][0] <= now:
            deadline, _, task_id = heapq.heappop(self._attempts)
            due.append((task_id, deadline))
        return due

    # -- assignments ------------------------------------------------------------------------

    def assignment_sent(self, task_id: uuid.UUID, worker_id: uuid.UUID, now: float) -> None:
        """A task was assigned to a worker, which must acknowledge it within the
        heartbeat timeout."""
        self._assignments.pop(task_id, None)  # assigned again: its new deadline goes last
        self._assignments[task_id] = (now + self.policy.heartbeat_timeout, worker_id)

    def settled(self, task_id: uuid.UUID) -> None:
        """The task finished: no word from its worker is awaited any more."""
        self._assignments.pop(task_id, None)

    def unacknowledged(self, now: float) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """``(task, worker)`` for every assignment deadline passed by *now*. The caller
        ignores one that was acknowledged, or whose task has moved on."""
        due = []
        while self._assignments:
            task_id, (deadline, worker_id) = next(iter(self._assignments.items()))
            if deadline > now:
                break
            del self._assignments[task_id]
            due.append((task_id, worker_id))
        return due

    # -- retries ----------------------------------------------------------------------------

    def retry_later(self, task_id: uuid.UUID, sequence: int, failures: int, now: float) -> float:
        """Hold a task back after *failures* failed attempts (or lost workers); returns
        the pause. :meth:`due_retries` releases it."""
        pause = self.retry_backoff.pause(failures, self._random)
        heapq.heappush(self._retries, (now + pause, sequence, task_id))
        return pause

    def due_retries(self, now: float) -> list[uuid.UUID]:
        """The tasks whose pause has ended by *now*, in the order they became due."""
        due = []
        while self._retries and self._retries[0][0] <= now:
            due.append(heapq.heappop(self._retries)[2])
        return due


__all__ = ["Liveness"]
