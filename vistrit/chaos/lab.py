"""The lab: a real cluster of processes, each coordinator behind a relay, that the nemesis
can break.

:class:`Lab` starts ``N`` coordinators (``c1`` … ``cN``, ranks 1 … N, each with a data dir
and its election history in ``DIR/nodes/cI/``) and ``M`` workers (``w1`` … ``wM``, running
:mod:`vistrit.chaos.work`), all with ``python -m vistrit`` exactly as by hand, all
authenticated with the run's own token file. Each coordinator has a
:class:`~vistrit.chaos.relay.LinkRelay`, and everyone, the coordinators themselves
included, is told the relays' addresses, never the coordinators' own: every link passes
through a relay, where the nemesis cuts or slows it. Each node's output (its log) goes to
``DIR/nodes/NAME.log``.

The nemesis kills (SIGKILL), restarts, pauses (SIGSTOP) and resumes (SIGCONT) nodes by
their process ids; :meth:`Lab.stop` resumes the paused, stops everything (SIGTERM, then
SIGKILL), and deletes the namespaces made.

Read next: :mod:`vistrit.chaos.workload`.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vistrit.chaos.hosts import Namespaces
from vistrit.chaos.relay import FrameSink, LinkRelay, Links
from vistrit.demo import free_port

log = logging.getLogger(__name__)

#: How long a node may take to start (to print its first line), and to stop.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

#: The port every coordinator binds inside its namespace.
NETNS_PORT = 7878


@dataclass(frozen=True)
class LabConfig:
    """The cluster to build: how many of each, their slots, where, and on what hosts."""

    directory: Path
    coordinators: int = 3
    workers: int = 3
    clients: int = 2
    slots: int = 2
    hosts: str = "local"  # or "netns"
    seed: int = 0


class Lab:
    """The processes and relays of a run (see the module docstring)."""

    def __init__(
        self,
        config: LabConfig,
        links: Links,
        on_frame: FrameSink,
        clock: Callable[[], float],
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.links = links
        self.on_frame = on_frame
        self.clock = clock
        self.stop_event = stop or threading.Event()  # set: give up starting
        self.coordinators = [f"c{i}" for i in range(1, config.coordinators + 1)]
        self.workers = [f"w{i}" for i in range(1, config.workers + 1)]
        self.clients = [f"client{i}" for i in range(1, config.clients + 1)]
        self.nodes_dir = config.directory / "nodes"
        self.token = config.directory / "token"
        self.namespaces = Namespaces() if config.hosts == "netns" else None
        self.relays: dict[str, LinkRelay] = {}
        self.bound: dict[str, str] = {}  # coordinator -> the address it binds
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.paused: set[str] = set()
        self._commands: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the relays, the coordinators, then the workers; returns once all are up."""
        self.nodes_dir.mkdir(parents=True, exist_ok=True)
        if not self.token.exists():  # a secret per role, as a careful operator would
            lines = [
                f"{role} {secrets.token_hex(32)}\n" for role in ("coordinator", "worker", "client")
            ]
            descriptor = os.open(self.token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write("".join(lines))
        for rank, name in enumerate(self.coordinators, 1):
            self._relay_for(name, rank)
        peers = ",".join(
            f"{rank}@{self.relay_address(name)}" for rank, name in enumerate(self.coordinators, 1)
        )
        for rank, name in enumerate(self.coordinators, 1):
            data = self.nodes_dir / name
            args = ["coordinator", "--bind", self.bound[name]]
            if len(self.coordinators) > 1:  # one alone runs no election
                args += ["--id", str(rank), "--peers", peers]
            args += ["--name", name, "--data-dir", str(data), "--heartbeat-timeout", "2"]
            self._spawn(name, [*args, "--retry-backoff", "0.2"])
        for name in self.coordinators:
            self._wait_ready(name, "listening on")
        for name in self.workers:
            if self.namespaces is not None:
                self.namespaces.add(name)
            args = ["worker", "--coordinator", self.coordinator_list(), "--name", name]
            args += ["--slots", str(self.config.slots), "--tasks", "vistrit.chaos.work"]
            self._spawn(name, [*args, "--heartbeat", "0.5", "--reconnect-timeout", "600"])
        for name in self.workers:
            self._wait_ready(name, "joined")

    def _relay_for(self, name: str, rank: int) -> None:
        if self.namespaces is not None:
            inside, outside = self.namespaces.add(name)
            self.bound[name] = f"{inside}:{NETNS_PORT}"
            listen, upstream = (outside, 0), (inside, NETNS_PORT)
        else:
            port = free_port()
            self.bound[name] = f"127.0.0.1:{port}"
            listen, upstream = ("127.0.0.1", 0), ("127.0.0.1", port)
        relay = LinkRelay(
            name,
            listen,
            upstream,
            self.links,
            self.on_frame,
            self.clock,
            seed=self.config.seed * 1000 + rank,
        )
        relay.start()
        self.relays[name] = relay

    def relay_address(self, name: str) -> str:
        """Where coordinator *name* is reached: its relay."""
        host, port = self.relays[name].address
        return f"{host}:{port}"

    def coordinator_list(self) -> str:
        """Every coordinator, as workers and clients are told: ``HOST:PORT,...`` (relays)."""
        return ",".join(self.relay_address(name) for name in self.coordinators)

    def _spawn(self, name: str, args: list[str]) -> None:
        argv = [sys.executable, "-m", "vistrit", "--log-level", "INFO", *args]
        argv += ["--token-file", str(self.token)]
        if self.namespaces is not None:
            argv = self.namespaces.command(name, argv)
        self._commands[name] = argv
        self._launch(name)

    def _launch(self, name: str) -> None:
        with open(self.nodes_dir / f"{name}.log", "ab") as output:
            output.write(f"--- started at {self.clock():.3f} s\n".encode())
            output.flush()
            process = subprocess.Popen(
                self._commands[name],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with self._lock:
            self.processes[name] = process

    def _wait_ready(self, name: str, words: str) -> None:
        """Wait until *name* printed its ready line (its log has *words*)."""
        path = self.nodes_dir / f"{name}.log"
        deadline = time.monotonic() + START_TIMEOUT
        while words not in path.read_text("utf-8", "replace"):
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}: see {path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {START_TIMEOUT:g} s: see {path}")
            if self.stop_event.wait(0.05):
                raise RuntimeError(f"interrupted while {name} was starting")

    # -- breaking (the nemesis) -----------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL *name*'s process, and collect it."""
        with self._lock:
            process = self.processes[name]
        process.kill()
        process.wait(STOP_TIMEOUT)

    def restart(self, name: str) -> None:
        """Start *name* again, as it was started the first time."""
        self._launch(name)

    def pause(self, name: str) -> None:
        """SIGSTOP *name*: alive, silent."""
        with self._lock:
            self.paused.add(name)
            os.kill(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT *name*."""
        with self._lock:
            self.paused.discard(name)
            os.kill(self.processes[name].pid, signal.SIGCONT)

    # -- ending -----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop every process (paused ones resumed first), every relay, every namespace.
        Returns the nodes that did not stop within :data:`STOP_TIMEOUT` of SIGTERM, and
        were killed."""
        with self._lock:
            processes = dict(self.processes)
            for name in self.paused:
                os.kill(processes[name].pid, signal.SIGCONT)
            self.paused.clear()
        for name in [*self.workers, *self.coordinators]:  # workers first
            process = processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
        killed = []
        for name, process in processes.items():
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                killed.append(name)
                process.kill()
                process.wait(STOP_TIMEOUT)
        self.links.stop()
        for relay in self.relays.values():
            relay.stop()
        if self.namespaces is not None:
            self.namespaces.delete()
        return killed
