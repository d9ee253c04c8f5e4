"""Backoff: how long to wait before trying again, growing with each failure, with jitter.

Every retry in Vistrit uses this one rule: a failed task's next attempt, a worker or a
client looking for its coordinator again, a coordinator reopening its link to a peer.

    pause(n) = min(cap, base * 2 ** (n - 1)) * jitter,   jitter uniform in [0.5, 1)

*Exponential*: each failure doubles the pause, so a peer that is down for long is not
flooded with attempts. *Capped*: the pause never grows past ``cap``, so a peer that comes
back is found again soon. *Jittered*: nodes that failed together (every worker of a
coordinator that restarted) spread their attempts out instead of all returning at once
(the "thundering herd").

This module never touches sockets, threads, clocks or logging; randomness is passed in
as a function. Read next: :mod:`vistrit.logic.liveness`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The jitter's range: a pause is between this fraction of the nominal pause and all of it.
JITTER_FLOOR = 0.5


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and jitter (see the module docstring)."""

    #: The nominal pause after the first failure, in seconds.
    base: float
    #: The longest nominal pause, in seconds.
    cap: float

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("a backoff needs 0 < base <= cap")

    def nominal(self, failures: int) -> float:
        """The pause after *failures* failures (at least one), before jitter."""
        return min(self.cap, self.base * 2.0 ** (max(1, failures) - 1))

    def pause(self, failures: int, random: Callable[[], float] | None) -> float:
        """The pause after *failures* failures, jittered by *random* (a function giving a
        float in [0, 1), such as ``random.random``); ``None`` gives no jitter."""
        jitter = 1.0 if random is None else JITTER_FLOOR + (1 - JITTER_FLOOR) * random()
        return self.nominal(failures) * jitter


__all__ = ["JITTER_FLOOR", "Backoff"]
