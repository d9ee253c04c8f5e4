"""The coordinator: accepts connections, keeps the task store and the worker registry, and
schedules tasks onto workers.

* :mod:`vistrit.coordinator.core` - what the coordinator *decides*, one message at a time.
  No sockets or threads: each handler takes a message and ``now`` and returns the messages
  to send, so it is tested with a fake clock.
* :mod:`vistrit.coordinator.server` - the ``socketserver`` threads that feed it: one per
  connection, a lock around the core, and a writer per connection.

Read next: :mod:`vistrit.coordinator.core`.
"""

from vistrit.coordinator.server import Coordinator

__all__ = ["Coordinator"]
