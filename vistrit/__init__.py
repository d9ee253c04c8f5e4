"""Vistrit: an educational distributed computing platform.

For script authors: :class:`VistritClient` (submit work, get results),
:class:`VistritExecutor` and :func:`executor` (``concurrent.futures`` on a cluster, or on
another backend), :func:`task` (name a function for workers started with ``--tasks``) and
:func:`current_task` (a running function's progress and cancellation).

Layers, lowest first (a layer imports only from layers below it; ``tests/test_layers.py``
checks this):

* :mod:`vistrit.protocol` - VistritProtocol as a pure library (sans-I/O);
* :mod:`vistrit.logic` and :mod:`vistrit.defaults` - pure decisions and tunables;
* :mod:`vistrit.transport` - all socket code; :mod:`vistrit.leader` - how workers and
  clients find the coordinator that leads;
* :mod:`vistrit.coordinator`, :mod:`vistrit.worker`, :mod:`vistrit.client` - the nodes
  (:mod:`vistrit.results`: what the client hands back);
* :mod:`vistrit.executors` - ``concurrent.futures`` on a cluster; :mod:`vistrit.bench`,
  :mod:`vistrit.demo`, :mod:`vistrit.election_demo` - measurements and the demos;
  :mod:`vistrit.chaos` - the lab: a real cluster broken on purpose, checked and drawn;
* :mod:`vistrit.cli` and ``__main__`` - argument parsing, logging set-up and printing.
"""

__version__ = "0.2.0"

from vistrit.client import VistritClient
from vistrit.executors import VistritExecutor, executor
from vistrit.worker.calls import current_task
from vistrit.worker.functions import task

__all__ = ["VistritClient", "VistritExecutor", "__version__", "current_task", "executor", "task"]
