"""The workload of a chaos run: clients submitting ``digest`` tasks, and the history of
what each one did and saw.

Each client is a :class:`~vistrit.client.VistritClient` of its own, in a thread of its
own, named ``client1``, ``client2``… (the relays know it by that name). For each of its
tasks it records, in ``history.jsonl``:

* ``submit``: ``invoke`` with the function and its input, then ``ok`` once a coordinator
  acknowledged the task (its future's ``accepted``), ``fail`` if it was refused, or
  ``info`` if no acknowledgement came in time: the task may or may not be recorded;
* ``result``: ``invoke`` as the client starts waiting, then ``ok`` with the value the
  client saw, ``fail`` with the error if the task failed, or ``info`` if the client gave
  up waiting.

When every fault has healed, :meth:`Workload.read_back` asks the cluster about every task
once more (``read``: ``ok`` with the value or the final state, ``fail`` if the cluster
does not know the task): an outcome seen once must still be there, and the same.

Read next: :mod:`vistrit.chaos.run`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from vistrit.chaos.history import JsonLines
from vistrit.chaos.work import DIGEST
from vistrit.client import TaskError, TaskNotFound, TaskRejected, VistritClient
from vistrit.credentials import Credentials

log = logging.getLogger(__name__)

#: How long a client waits for a task's acknowledgement before it records ``info``.
ACK_TIMEOUT = 10.0

#: How many times a task is tried (a kill loses the attempt under way).
RETRIES = 10


@dataclass(frozen=True)
class WorkloadConfig:
    """How much work, how fast, and how long each task works."""

    tasks: int = 300
    rate: float = 20.0  # tasks submitted a second, all clients together
    work_ms: int = 200
    seed: int = 0


class Workload:
    """The clients (see the module docstring)."""

    def __init__(
        self,
        config: WorkloadConfig,
        clients: list[str],
        coordinators: str,
        credentials: Credentials,
        history: JsonLines,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.names = clients
        self.coordinators = coordinators
        self.credentials = credentials
        self.history = history
        self.futures: dict[str, Future[Any]] = {}  # task -> its future
        self.submitted: dict[str, str] = {}  # task -> client
        self.clients: dict[str, VistritClient] = {}
        self._lock = threading.Lock()
        self._stopping = stopping or threading.Event()  # set: stop submitting, waiting, asking

    def run(self) -> None:
        """Submit every task, the clients in parallel; returns when all are submitted."""
        for name in self.names:
            self.clients[name] = VistritClient(
                self.coordinators,
                name=name,
                credentials=self.credentials,
                request_timeout=5.0,
                reconnect_timeout=600.0,
            )
        threads = [
            threading.Thread(target=self._client, args=(number, name), name=name)
            for number, name in enumerate(self.names)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # in slices, so that Ctrl-C is taken at once
                thread.join(0.25)

    def _client(self, number: int, name: str) -> None:
        client = self.clients[name]
        count = len(self.names)
        mine = range(number, self.config.tasks, count)
        every = count / self.config.rate if self.config.rate > 0 else 0.0
        start = time.monotonic() + number * every / count
        for sequence, index in enumerate(mine):
            if self._stopping.wait(max(0.0, start + sequence * every - time.monotonic())):
                return
            self._submit(client, name, index)

    def _submit(self, client: VistritClient, name: str, index: int) -> None:
        task = uuid.UUID(int=(self.config.seed << 64) + index + 1, version=4)
        key = str(task)
        data = f"{name}-{index}|{self.config.work_ms}"
        record = {"process": name, "f": "submit", "task": key}
        self.history.write(
            {**record, "type": "invoke", "value": {"function": DIGEST, "input": data}}
        )
        with self._lock:
            self.submitted[key] = name
        try:
            future = client.submit(DIGEST, data, task_id=task, retries=RETRIES)
        except Exception as exc:
            self.history.write({**record, "type": "info", "value": f"{type(exc).__name__}: {exc}"})
            return
        if future.accepted.wait(ACK_TIMEOUT):
            self.history.write({**record, "type": "ok"})
        elif future.done() and isinstance(future.exception(), TaskRejected):
            self.history.write({**record, "type": "fail", "value": str(future.exception())})
            return
        else:
            self.history.write({**record, "type": "info", "value": "no acknowledgement yet"})
        result = {"process": name, "f": "result", "task": key}
        self.history.write({**result, "type": "invoke"})
        with self._lock:
            self.futures[key] = future
        future.add_done_callback(lambda done: self._outcome(result, done))

    def _outcome(self, record: dict[str, Any], future: Future[Any]) -> None:
        if future.cancelled():
            self.history.write({**record, "type": "fail", "value": "cancelled"})
            return
        error = future.exception()
        if error is None:
            self.history.write({**record, "type": "ok", "value": future.result()})
        elif isinstance(error, TaskError):
            self.history.write({**record, "type": "fail", "value": str(error)})
        else:
            self.history.write(
                {**record, "type": "info", "value": f"{type(error).__name__}: {error}"}
            )

    def settle(self, timeout: float) -> int:
        """Wait (at most *timeout* s) for every task's outcome; returns how many have none."""
        deadline = time.monotonic() + timeout
        with self._lock:
            futures = list(self.futures.values())
        for future in futures:
            while not future.done() and time.monotonic() < deadline:
                if self._stopping.wait(0.05):
                    return sum(not future.done() for future in futures)
        return sum(not future.done() for future in futures)

    def read_back(self) -> None:
        """Ask about every task submitted once more (``read``), through its own client."""
        with self._lock:
            tasks = dict(self.submitted)
        for key, name in tasks.items():
            if self._stopping.is_set():
                return
            record = {"process": name, "f": "read", "task": key}
            self.history.write({**record, "type": "invoke"})
            try:
                info = self.clients[name].status(key)
            except TaskNotFound:
                self.history.write({**record, "type": "fail", "value": "not found"})
                continue
            except Exception as exc:
                self.history.write(
                    {**record, "type": "info", "value": f"{type(exc).__name__}: {exc}"}
                )
                continue
            output = info.output if info.state == "Completed" else None
            value = {
                "state": info.state,
                "result": None if output is None else output.decode("utf-8", "replace"),
            }
            if info.error:
                value["error"] = info.error
            self.history.write({**record, "type": "ok", "value": value})

    def close(self) -> None:
        """Close every client (an unfinished future fails, and is recorded as ``info``)."""
        for client in self.clients.values():
            client.close()
