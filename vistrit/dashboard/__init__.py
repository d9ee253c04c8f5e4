"""The dashboard: a coordinator's state in the browser, served by the coordinator itself.

``python -m vistrit coordinator --dashboard HOST:PORT`` serves, from a thread of the
coordinator's process and with the standard library only:

* the **cluster**: the coordinators, the leader and its term, each worker with its slots,
  load and heartbeat age (and those that left lately, marked), throughput over time;
* the **task stream**: what ran on which worker slot, when;
* the **task list**, filtered by state, and each **task's page** (attempts, workers,
  times, progress, the error with its remote traceback, output size);
* the **election history**: terms, leaders, when and why they changed;
* a **frame view**: sampled frames, each with its byte table.

The pages are files of the package (``static/``); their data comes from a small JSON API
(:mod:`vistrit.dashboard.views`); everything is behind the cluster's token
(:mod:`vistrit.dashboard.server`). The docs: ``docs/dashboard.rst`` and
``docs/dashboard-api.rst``.

Read next: :mod:`vistrit.dashboard.server`.
"""

from vistrit.dashboard.server import Dashboard, dashboard_token

__all__ = ["Dashboard", "dashboard_token"]
