"""Real processes for the tests: ``python -m vistrit ...`` started in the background,
stopped by their process ids when the test ends."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Processes:
    cwd: Path
    env: dict[str, str]
    running: list[subprocess.Popen[str]] = field(default_factory=list)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start ``python -m vistrit ARGS`` in the background (stopped when the test ends)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "vistrit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
            env=self.env,
        )
        self.running.append(process)
        return process

    def start(self, *args: str) -> tuple[subprocess.Popen[str], str]:
        """Start a node; returns it and the ready line it printed."""
        process = self.spawn(*args)
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    def run(
        self, *args: str, stdin: str = "", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vistrit", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.cwd,
            env=self.env,
        )

    def stop(self, process: subprocess.Popen[str]) -> tuple[int, str]:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        return process.returncode, err


def stop_all(group: Processes) -> None:
    """Kill what is still running, and collect every process."""
    for process in group.running:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


@contextlib.contextmanager
def dask_cluster(threads: int = 4) -> Iterator[tuple[Any, str]]:
    """A Dask scheduler and one worker in this process, on 127.0.0.1 over TCP: the
    cluster, and its ``dask://HOST:PORT`` URL. (The caller skips if Dask is missing.)"""
    import distributed

    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=threads,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=":0",  # any free port: None still takes 8787
    ) as cluster:
        yield cluster, "dask://" + cluster.scheduler_address.removeprefix("tcp://")
