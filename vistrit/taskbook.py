"""The client's book of its unfinished tasks: futures by id, and what to submit again.

:class:`~vistrit.client.VistritClient` writes each task it submits here, with its
future. What the coordinator pushes about a task settles or updates its future here:

* ``TaskOutcome`` (and a ``TaskQueryResponse`` in a final state) settles it; a large one
  is answered with a ``TaskOutcomeAck`` (v4), so the coordinator lets its bytes go;
* ``TaskStatus`` (v4) notes that it runs, its progress, or why it waits;
* a refused submission fails it (``TaskRejected``); a lost cluster fails them all.

Submissions are made here (:meth:`TaskBook.submissions`): a ``TaskSubmit`` a task, or, to
a v4 coordinator, ``TaskSubmitBatch`` es of many. After a reconnection, every task still
in the book is submitted again under the same id (:meth:`TaskBook.unfinished`).

The book never touches sockets; it shares the client's lock. Read next:
:mod:`vistrit.client`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from functools import partial

from vistrit.defaults import RELEASE_BYTES
from vistrit.logic.store import payload_bytes
from vistrit.logic.tasks import FINAL
from vistrit.protocol import messages as m
from vistrit.protocol.types import Task, TaskResult, TaskState
from vistrit.replies import Answered
from vistrit.results import TaskFuture, TaskNotFound, TaskRejected
from vistrit.submission import batches

#: The most waiting notes kept for tasks that are not this client's (each is read by the
#: ``status`` call that caused it, just after).
MAX_NOTES = 1000


class TaskBook:
    """The client's unfinished tasks (see the module docstring). Thread-safe."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._futures: dict[uuid.UUID, TaskFuture] = {}
        self._submitted: dict[uuid.UUID, Task] = {}  # for resubmission after a reconnect
        self._waiting: dict[uuid.UUID, str] = {}  # why a task asked about waits (status)

    def add(self, future: TaskFuture, task: Task) -> None:
        """A task was submitted (call with the client's lock held)."""
        self._futures[task.id] = future
        self._submitted[task.id] = task

    def submissions(
        self,
        tasks: list[Task],
        futures: list[TaskFuture],
        bulk: bool,
        on_answer: Callable[[uuid.UUID, Answered], None],
    ) -> list[m.Message]:
        """Write *tasks* down with their *futures*, and return what submits them: a
        ``TaskSubmit`` each, or, with *bulk* (a v4 coordinator), ``TaskSubmitBatch`` es
        (:func:`~vistrit.submission.batches`). *on_answer* registers each request's answer,
        which fails the futures of the tasks it refuses. (Call with the client's lock.)"""
        messages: list[m.Message] = []
        by_id = dict(zip((task.id for task in tasks), futures))
        for task, future in zip(tasks, futures):
            self.add(future, task)
        for part in batches(tasks) if bulk else [[task] for task in tasks]:
            request_id = uuid.uuid4()
            if bulk:
                on_answer(request_id, partial(self.batch_acknowledged, [by_id[t.id] for t in part]))
                messages.append(m.TaskSubmitBatch(request_id=request_id, tasks=tuple(part)))
            else:
                on_answer(request_id, partial(self.acknowledged, by_id[part[0].id]))
                messages.append(m.TaskSubmit(task=part[0], request_id=request_id))
        return messages

    def resubmissions(
        self, bulk: bool, on_answer: Callable[[uuid.UUID, Answered], None]
    ) -> list[m.Message]:
        """Every unfinished task submitted again, under its id, its answer awaited as the
        first time (after a reconnection; call with the client's lock held)."""
        ids = [task_id for task_id in self._futures if task_id in self._submitted]
        tasks = [self._submitted[task_id] for task_id in ids]
        futures = [self._futures[task_id] for task_id in ids]
        return self.submissions(tasks, futures, bulk and len(tasks) > 1, on_answer)

    def get(self, task_id: uuid.UUID) -> TaskFuture | None:
        """The future of a task this client submitted and is not finished, if any."""
        with self._lock:
            return self._futures.get(task_id)

    def unfinished(self) -> list[Task]:
        """Every task still waiting for its outcome (call with the client's lock held)."""
        return [self._submitted[t] for t in self._futures if t in self._submitted]

    def waiting(self, task_id: uuid.UUID) -> str | None:
        """Why a task asked about last waits (heard just before the answer), if it does."""
        with self._lock:
            note = self._waiting.pop(task_id, None)
            future = self._futures.get(task_id)
        return note or (future.waiting if future is not None else None)

    def _take(self, task_id: uuid.UUID) -> TaskFuture | None:
        with self._lock:
            self._submitted.pop(task_id, None)
            return self._futures.pop(task_id, None)

    def acknowledged(self, future: TaskFuture, ack: m.Message | None) -> None:
        """The coordinator answered a submission: a refusal fails its future. (A lost
        connection is no answer, None: the task is submitted again when it comes back.)"""
        if isinstance(ack, m.TaskSubmitAck) and ack.accepted:
            future._accept()
        refused = isinstance(ack, m.TaskSubmitAck) and not ack.accepted
        if refused and self._take(future.task_id) is not None and not future.done():
            assert isinstance(ack, m.TaskSubmitAck)
            future.set_exception(TaskRejected(ack.reason or "the coordinator refused the task"))

    def batch_acknowledged(self, futures: list[TaskFuture], ack: m.Message | None) -> None:
        """The coordinator answered a ``TaskSubmitBatch``: each task it refused fails its
        future (with the reason); the others wait for their outcomes."""
        if not isinstance(ack, m.TaskSubmitBatchAck):
            return  # lost (the tasks are submitted again once back), or not an answer
        by_id = {future.task_id: future for future in futures}
        refused = {refusal.task_id for refusal in ack.refused}
        for each in futures:
            if each.task_id not in refused:
                each._accept()
        for refusal in ack.refused:
            future = by_id.get(refusal.task_id)
            if future is not None and self._take(future.task_id) is not None and not future.done():
                future.set_exception(TaskRejected(refusal.reason))

    def on_outcome(self, message: m.TaskOutcome) -> bool:
        """A task's final state: settle its future. True when it was this client's and
        its input and result are large (``RELEASE_BYTES``): the coordinator may let them
        go once told (``TaskOutcomeAck``, :mod:`vistrit.coordinator.release`)."""
        with self._lock:
            task = self._submitted.get(message.task_id)
        future = self._take(message.task_id)
        if future is None or task is None:
            return False
        future._settle(message.state, message.result)
        return _large(task, message.result)

    def on_query_response(self, message: m.TaskQueryResponse) -> bool:
        """An answer about a task: a final state settles its future, as an outcome does,
        and, as for an outcome, True when the coordinator may let its large bytes go (the
        client asked after a reconnection, say, instead of being told)."""
        task = message.task
        final = task is not None and task.state.WIRE_NAME in FINAL
        if not (final or not message.found):
            return False
        with self._lock:
            submitted = self._submitted.get(message.task_id)
        future = self._take(message.task_id)
        if future is not None and task is not None and final:
            future._settle(task.state, message.result)
            return submitted is not None and _large(submitted, message.result)
        if future is not None:
            future.set_exception(TaskNotFound(f"no task {message.task_id}"))
        return False

    def on_status(self, message: m.TaskStatus) -> None:
        """A v4 coordinator's news of a task: it runs (with its progress), or it waits, and
        why (kept for :meth:`waiting` when it is not one of this client's tasks)."""
        with self._lock:
            future = self._futures.get(message.task_id)
            if future is None and isinstance(message.state, TaskState.Pending):
                if len(self._waiting) >= MAX_NOTES:  # asked about and never read: forget
                    del self._waiting[next(iter(self._waiting))]
                self._waiting[message.task_id] = message.message or ""
        if future is not None:
            future._note(message.state, message.progress, message.message)

    def fail_all(self, error: Exception) -> None:
        """Fail every future: the coordinators are gone for good, or the client closed."""
        with self._lock:
            futures = list(self._futures.values())
            self._futures.clear()
            self._submitted.clear()
        for future in futures:
            if not future.done():
                future.set_exception(error)


def _large(task: Task, result: TaskResult | None) -> bool:
    """Whether a task's input and result come to ``RELEASE_BYTES`` or more."""
    data = result.data if result is not None else None
    return payload_bytes(task.payload) + len(data or b"") >= RELEASE_BYTES


__all__ = ["TaskBook"]
