"""Pipelining: many requests in flight on one connection, each answer matched to its waiter.

A client does not wait for one answer before it sends the next request. Each request
carries an id (a ``request_id``, or the id of the task it asks about), and
:class:`Replies` keeps, for each id, the future that waits for its answer. When the
reader thread receives an answer it hands it to the matching future, whichever thread is
waiting on it; when the connection is lost, every waiting future fails at once, so no
caller waits for an answer that cannot come.

Answers about a task are matched by the task's id and the kind of request (a
``TaskQuery`` is answered by ``TaskQueryResponse``, a ``TaskCancel`` by
``TaskCancelAck``); several callers may wait for the same task at once.

This module never touches sockets. Read next: :mod:`vistrit.client`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Literal

from vistrit.protocol import messages as m

#: The kinds of request answered by task id.
About = Literal["query", "cancel"]

#: What :meth:`Replies.on_answer` calls: with the answer, or with None if none can come.
Answered = Callable[[m.Message | None], None]


class Replies:
    """The requests waiting for an answer (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_request: dict[uuid.UUID, Future[m.Message]] = {}
        self._calls: dict[uuid.UUID, Answered] = {}
        self._by_task: dict[About, dict[uuid.UUID, list[Future[m.Message]]]] = {
            "query": {},
            "cancel": {},
        }

    def expect(self, request_id: uuid.UUID) -> Future[m.Message]:
        """The future that the answer to request *request_id* will resolve."""
        future: Future[m.Message] = Future()
        with self._lock:
            self._by_request[request_id] = future
        return future

    def on_answer(self, request_id: uuid.UUID, call: Answered) -> None:
        """Have *call* take the answer to request *request_id* (None if the connection is
        lost first). Lighter than :meth:`expect`: no future, for a request nobody waits
        on (a submission: a ``concurrent.futures.Future`` costs a condition variable)."""
        with self._lock:
            self._calls[request_id] = call

    def expect_about(self, task_id: uuid.UUID, kind: About) -> Future[m.Message]:
        """The future that the next answer of *kind* about *task_id* will resolve."""
        future: Future[m.Message] = Future()
        with self._lock:
            self._by_task[kind].setdefault(task_id, []).append(future)
        return future

    def answer(self, request_id: uuid.UUID, message: m.Message) -> bool:
        """Resolve the request *request_id* with *message*; False if none waits for it."""
        with self._lock:
            future = self._by_request.pop(request_id, None)
            call = self._calls.pop(request_id, None) if future is None else None
        if future is not None:
            future.set_result(message)
        elif call is not None:
            call(message)
        return future is not None or call is not None

    def answer_about(self, task_id: uuid.UUID, kind: About, message: m.Message) -> None:
        """Resolve every request of *kind* about *task_id* with *message*."""
        with self._lock:
            futures = self._by_task[kind].pop(task_id, [])
        for future in futures:
            future.set_result(message)

    def fail(self, error: Exception) -> None:
        """Fail every waiting request with *error* (the connection was lost)."""
        with self._lock:
            waiting = list(self._by_request.values())
            for groups in self._by_task.values():
                for group in groups.values():
                    waiting += group
                groups.clear()
            self._by_request.clear()
            calls, self._calls = list(self._calls.values()), {}
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        for call in calls:
            call(None)


__all__ = ["About", "Answered", "Replies"]
