"""One stoppable repeating timer, on ``threading.Timer``: what drives every heartbeat and tick.

Fault tolerance runs on clocks: a worker heartbeats every second, a coordinator checks for
silent workers and overdue tasks four times a second, a coordinator of a cluster checks
its election's deadlines twenty times a second. Each of them is a
:class:`RepeatingTimer`:

* each run is one ``threading.Timer`` (a thread that sleeps *interval* seconds, then calls
  the action once); the run schedules the next only while the timer is running, so
  :meth:`RepeatingTimer.stop` ends the chain: nothing fires after it returns, except a
  run already under way;
* the action's exceptions are logged and the chain goes on: a bug in one tick must not
  silently end failure detection for good (a thread boundary, so the catch-all belongs
  here);
* the threads are daemons, named after their owner, so a stack dump says whose they are.

The interval is measured from the end of one run to the start of the next, so a slow
action delays the next run instead of piling runs up.

Read next: :mod:`vistrit.session`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class RepeatingTimer:
    """Call *action* every *interval* seconds, from ``start()`` until ``stop()``."""

    def __init__(self, interval: float, action: Callable[[], object], name: str) -> None:
        if interval <= 0:
            raise ValueError("a timer's interval must be positive")
        self.interval = interval
        self.name = name
        self._action = action
        self._lock = threading.Lock()
        self._running = False
        self._timer: threading.Timer | None = None

    @property
    def running(self) -> bool:
        """True from ``start()`` until ``stop()``."""
        return self._running

    def start(self) -> None:
        """Schedule the first run, *interval* seconds from now. Idempotent."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._schedule()

    def stop(self) -> None:
        """Cancel the next run and schedule no more. Safe from any thread, the action's
        own included; idempotent."""
        with self._lock:
            self._running = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self) -> None:
        """Arm the next run. Call with the lock held, while running."""
        self._timer = threading.Timer(self.interval, self._run)
        self._timer.name = self.name
        self._timer.daemon = True
        self._timer.start()

    def _run(self) -> None:
        if not self._running:
            return
        try:
            self._action()
        except Exception:  # a thread boundary: log it, and keep the clock going
            log.exception("%s: timer action failed", self.name)
        with self._lock:
            if self._running:
                self._schedule()


__all__ = ["RepeatingTimer"]
