"""One chaos run, from the first process started to the report: ``python -m vistrit chaos``.

Interrupted (Ctrl-C, or SIGTERM from the CLI), a run still stops everything it started,
namespaces included, on its way out; it then writes no verdict and no report.

:func:`run` builds the lab (:mod:`~vistrit.chaos.lab`), starts the nemesis
(:mod:`~vistrit.chaos.nemesis`) and the clients (:mod:`~vistrit.chaos.workload`), and
when every task is submitted and every kind of fault has happened at least once, ends the
faults, waits for the outcomes, reads every task back, and stops everything it started.
Then it collects the coordinators' election histories into ``terms.jsonl``, runs the
checker (:mod:`~vistrit.chaos.checker`) and writes ``verdict.json`` and ``report.html``
(:mod:`~vistrit.chaos.report`).

Read next: :mod:`vistrit.chaos.checker`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from vistrit.chaos import history as files
from vistrit.chaos.checker import Verdict, check
from vistrit.chaos.history import JsonLines
from vistrit.chaos.lab import STOP_TIMEOUT, Lab, LabConfig
from vistrit.chaos.nemesis import Fault, Nemesis, Schedule
from vistrit.chaos.relay import Links
from vistrit.chaos.report import PROTOCOL_PAGE, write_report
from vistrit.chaos.workload import Workload, WorkloadConfig
from vistrit.coordinator.elections import FILE_NAME as ELECTIONS
from vistrit.credentials import Credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChaosConfig:
    """A whole run: the lab, the workload, the faults, and how long outcomes may take."""

    lab: LabConfig
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    nemesis: tuple[str, ...] = ("kill", "pause", "partition", "slow")
    interval: float = 2.0  # the mean pause between faults
    duration: float = 2.0  # the mean length of a fault
    settle: float = 60.0  # how long outcomes may take once the faults are over
    script: tuple[Fault, ...] | None = None  # faults to apply instead of drawn ones
    docs: str = PROTOCOL_PAGE  # the protocol page, which the report links frames to


class _Scripted(Schedule):
    """A schedule that is a list: the docs' recorded runs break exactly what they explain."""

    def __init__(self, faults: tuple[Fault, ...]) -> None:
        super().__init__(tuple(sorted({f.kind for f in faults})), 0)
        self._faults = list(faults)

    def next(self, nodes: object) -> Fault | None:
        return self._faults.pop(0) if self._faults else None


class Interrupted(Exception):
    """The run was asked to stop (its *stop* event): everything it started is stopped."""


def run(
    config: ChaosConfig,
    report: Callable[[str], None] = lambda line: None,
    stop: threading.Event | None = None,
) -> Verdict:
    """Run, check and report (see the module docstring); returns the checker's verdict.
    Setting *stop* (the CLI's Ctrl-C and SIGTERM) ends the run early: everything is
    stopped, then :class:`Interrupted` is raised. Raises ``ValueError`` if the directory
    already holds a run."""
    stop = stop or threading.Event()
    directory = config.lab.directory
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / files.HISTORY).exists():
        raise ValueError(f"{directory} already holds a run: give another --out")
    origin = time.time()
    history = JsonLines(directory / files.HISTORY, origin)
    faults = JsonLines(directory / files.FAULTS, origin)
    frames = JsonLines(directory / files.FRAMES, origin)

    def on_frame(record: dict[str, object]) -> None:
        if "event" in record:  # a slow link broke a connection
            faults.write({"fault": "slow", **record})
        else:
            frames.write(record)

    links = Links()
    lab = Lab(config.lab, links, on_frame, frames.now, stop)
    files.write_json(directory / files.RUN, _describe(config, lab, origin))
    workload: Workload | None = None
    nemesis: Nemesis | None = None
    try:
        lab.start()
        if lab.namespaces is not None:  # written down, so that anyone can check they are gone
            files.write_json(
                directory / files.RUN,
                {**_describe(config, lab, origin), "namespaces": lab.namespaces.names()},
            )
        report(f"cluster up: {', '.join(lab.coordinators + lab.workers)} ({config.lab.hosts})")
        credentials = Credentials.load(lab.token)
        workload = Workload(
            config.workload, lab.clients, lab.coordinator_list(), credentials, history, stop
        )
        schedule = (
            _Scripted(config.script)
            if config.script is not None
            else Schedule(config.nemesis, config.workload.seed, config.interval, config.duration)
        )
        nemesis = Nemesis(schedule, lab, links, faults.write)
        nemesis.start()
        workload.run()
        report(f"{config.workload.tasks} tasks submitted")
        round_time = len(schedule.kinds) * 1.5 * (config.interval + config.duration)
        deadline = time.monotonic() + round_time + 30  # every kind once, at most this long
        while not nemesis.wait_round(0.25) and not stop.is_set() and time.monotonic() < deadline:
            pass
        nemesis.stop()
        report(f"faults over ({len(nemesis.applied)} applied); waiting for the outcomes")
        missing = workload.settle(config.settle)
        if missing:
            report(f"{missing} task(s) without an outcome after {config.settle:g} s")
        workload.read_back()
    finally:
        if nemesis is not None:
            nemesis.stop()
        if workload is not None:  # (its clients' threads are over: run() joined them)
            workload.close()
        for name in lab.stop():  # a node that would not stop is news: say so
            faults.write({"event": "killed at stop", "fault": "stop", "nodes": [[name]]})
            report(f"{name} did not stop within {STOP_TIMEOUT:g} s of SIGTERM: killed")
        _collect_terms(lab, origin, directory)
        for file in (history, faults, frames):
            file.close()
    if stop.is_set():
        raise Interrupted(f"interrupted: the run in {directory} was stopped")
    verdict = check(directory)
    files.write_json(directory / files.VERDICT, verdict.to_json())
    write_report(directory, config.docs)
    return verdict


def _describe(config: ChaosConfig, lab: Lab, origin: float) -> dict[str, object]:
    return {
        "started": origin,
        "seed": config.workload.seed,
        "hosts": config.lab.hosts,
        "nemesis": list(config.nemesis if config.script is None else ["scripted"]),
        "workload": asdict(config.workload),
        "interval": config.interval,
        "duration": config.duration,
        "coordinators": lab.coordinators,
        "workers": lab.workers,
        "clients": lab.clients,
    }


def _collect_terms(lab: Lab, origin: float, directory: object) -> None:
    """Every coordinator's election moves, from its ``elections.log``, into ``terms.jsonl``."""
    lines = []
    for name in lab.coordinators:
        path = lab.nodes_dir / name / ELECTIONS
        for record in files.read_lines(path) if path.exists() else []:
            if isinstance(record.get("time"), (int, float)):
                record["time"] = round(float(record["time"]) - origin, 6)
                lines.append({"node": name, **record})
    lines.sort(key=lambda record: record["time"])
    with open(lab.config.directory / files.TERMS, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in lines)
