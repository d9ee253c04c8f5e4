"""The worker: runs tasks for a coordinator.

* :mod:`vistrit.worker.functions` - task functions by name, the built-ins, ``@task``;
* :mod:`vistrit.worker.arithmetic` - the safe evaluator behind ``Compute`` tasks;
* :mod:`vistrit.worker.execution` - what each payload kind means;
* :mod:`vistrit.worker.node` - the node: connection, heartbeats, its slots;
* :mod:`vistrit.worker.slots` - the threads that run its tasks, fed by one queue.

Read next: :mod:`vistrit.worker.functions`.
"""

from vistrit.worker.functions import TaskCancelled, TaskContext, TaskFailed, task
from vistrit.worker.node import HandshakeRefused, Worker

__all__ = ["HandshakeRefused", "TaskCancelled", "TaskContext", "TaskFailed", "Worker", "task"]
