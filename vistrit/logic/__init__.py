"""Pure logic: the task state machine, the worker registry and the scheduler.

No sockets, threads, clocks or logging here: time is passed in as ``now`` and randomness
as an object with a ``choice`` method, so every decision can be tested with a fake clock.
The coordinator (:mod:`vistrit.coordinator`) applies these decisions to the network.
Read first: :mod:`vistrit.logic.tasks`.
"""
