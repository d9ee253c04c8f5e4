"""A browser's worth of dashboard traffic, for ``bench dashboard``.

The dashboard's page asks for its view once a second. :class:`Poller` does what a page
on the cluster view and one on the task stream would do together (``/api/cluster`` and
``/api/stream`` each second), in a thread, until stopped, and counts the answers, so that
the benchmark can measure what having the dashboard open costs W1.

Read next: :mod:`vistrit.bench.cluster`.
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

#: What one poll asks for: the cluster page's view, and the task stream's.
PATHS = ("/api/cluster", "/api/stream")


class Poller:
    """Polls a dashboard (its *url*, as the coordinator printed it) every *interval* s."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = parts.query.partition("token=")[2]
        self.interval = interval
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard poller", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self._stop.is_set():
            for path in PATHS:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"the dashboard answered {path} with {response.status}")
                    self.answers += 1
                finally:
                    connection.close()
            self._stop.wait(self.interval)
