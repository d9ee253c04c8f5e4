"""A worker's slots: as many threads as it runs tasks at once, fed by one queue.

The worker puts each task it accepts in the queue (:meth:`Slots.submit`); a free slot
thread takes it and runs it. A task still in the queue can be taken back
(:meth:`Slots.take_back`): a draining worker hands such tasks back to the coordinator.

What it buys over ``concurrent.futures.ThreadPoolExecutor``, which the worker used
before: the executor makes a ``Future`` (with its condition variable) for every task,
takes its shutdown lock to submit it, and counts idle threads with a semaphore at every
start and end: in W1 a profile of a worker (py-spy) put a quarter of its samples there.
A task here is a tuple in a ``queue.SimpleQueue`` and a set entry under a lock. A
worker's CPU per W1 task (``/proc``, alternately, three runs each): 56, 48 and 52 µs
before, 50, 47 and 48 after.

Read next: :mod:`vistrit.worker.node`.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)


class Slots:
    """*count* threads that run what is submitted, in order, until :meth:`shutdown`."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[uuid.UUID, Callable[[], None]] | None]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: set[uuid.UUID] = set()  # queued, not started: may be taken back
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name} slot {n + 1}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task_id: uuid.UUID, run: Callable[[], None]) -> None:
        """Run *run* in the first free slot (unless the task is taken back first)."""
        with self._lock:
            self._waiting.add(task_id)
        self._queue.put((task_id, run))

    def take_back(self) -> list[uuid.UUID]:
        """Every task still queued: none of them will start."""
        with self._lock:
            taken, self._waiting = list(self._waiting), set()
        return taken

    def shutdown(self) -> list[uuid.UUID]:
        """Take back what is queued, and wait for the tasks running to end; returns the
        tasks taken back. The slot threads end."""
        taken = self.take_back()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        return taken

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            task_id, run = item
            with self._lock:
                if task_id not in self._waiting:
                    continue  # taken back while it waited
                self._waiting.discard(task_id)
            try:
                run()
            except Exception:  # a thread boundary: the task's own errors are caught inside
                log.exception("a task's slot failed")


__all__ = ["Slots"]
