"""Scenes: short chaos runs with one scripted fault, that show one lesson each.

The docs' election and fault-tolerance pages draw their diagrams from these runs, made
while the docs are built (:func:`record`, then :func:`~vistrit.chaos.report.lamport_svg`
on the scene's window and messages); ``python -m vistrit chaos --scene NAME --out DIR``
runs the same scene, with its report.

* ``election`` - three coordinators; the leader, ``c3``, is killed: the others notice its
  silence, stand, and ``c2`` wins and takes the cluster over.
* ``worker-lost`` - one coordinator, two workers; ``w1`` is killed while it runs a task:
  the coordinator gives the task to ``w2``, and the client still gets one outcome.
* ``split-brain`` - the leader ``c3``, a client and a worker are cut off from the rest for
  three seconds: ``c2`` is elected on the other side, while ``c3`` still leads its own
  and accepts ``client1``'s work. Two leaders at once: the checker names the split brain,
  the bully algorithm's known flaw (see the limits page). When the partition heals,
  ``c3`` sees the newer term and follows ``c2``, taking ``c2``'s copy of the tasks, which
  lacks what ``c3`` finished alone; ``c3`` keeps those tasks, and finishes them again in
  its copy when it is handed the lead back, so the run stays valid.

Read next: :mod:`vistrit.chaos.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vistrit.chaos.checker import Verdict
from vistrit.chaos.lab import LabConfig
from vistrit.chaos.nemesis import Fault
from vistrit.chaos.report import Run, sequence_svg
from vistrit.chaos.run import ChaosConfig, run
from vistrit.chaos.workload import WorkloadConfig


@dataclass(frozen=True)
class Scene:
    """A scene: its cluster, its work, its one fault, and what its diagram shows (the
    frames of *messages*, from *before* seconds before the fault to *after* seconds after
    it began)."""

    coordinators: int
    workers: int
    workload: WorkloadConfig
    fault: Fault
    messages: frozenset[str]
    before: float
    after: float
    clients: int = 1
    valid: bool = True  # what the checker should say of it

    def config(self, directory: Path) -> ChaosConfig:
        """The run's configuration, in *directory*."""
        lab = LabConfig(directory, self.coordinators, self.workers, self.clients, slots=1)
        return ChaosConfig(lab, self.workload, script=(self.fault,), settle=30.0)


ELECTION_MESSAGES = frozenset(
    {"ElectionStart", "ElectionVote", "LeaderAnnounce", "ReplicaSnapshot"}
)
TASK_MESSAGES = frozenset(
    {"TaskSubmit", "TaskSubmitAck", "TaskAssign", "TaskAssignAck", "TaskResult", "TaskOutcome"}
)

SCENES = {
    "election": Scene(
        coordinators=3,
        workers=1,
        workload=WorkloadConfig(tasks=8, rate=2.0, work_ms=50),
        fault=Fault("kill", (("c3",),), gap=1.5, duration=2.5),
        messages=ELECTION_MESSAGES,
        before=0.2,
        after=1.5,
    ),
    "worker-lost": Scene(
        coordinators=1,
        workers=2,
        workload=WorkloadConfig(tasks=2, rate=4.0, work_ms=1500),
        fault=Fault("kill", (("w1",),), gap=0.8, duration=2.0),
        messages=TASK_MESSAGES,
        before=0.9,
        after=3.0,
    ),
    "split-brain": Scene(
        coordinators=3,
        workers=2,
        clients=2,
        workload=WorkloadConfig(tasks=40, rate=6.0, work_ms=50),
        fault=Fault(
            "partition",
            (("c3", "client1", "w1"), ("c1", "c2", "client2", "w2")),
            gap=1.5,
            duration=3.0,
        ),
        messages=ELECTION_MESSAGES | {"TaskSubmitAck"},
        before=0.1,
        after=3.6,
    ),
}


def record(name: str, directory: Path) -> tuple[Run, Verdict]:
    """Run scene *name* in *directory*; returns what it left and the checker's verdict."""
    verdict = run(SCENES[name].config(directory))
    return Run.load(directory), verdict


def diagram(name: str, directory: Path) -> str:
    """Run scene *name* in *directory* and draw its window: the SVG the docs embed."""
    scene = SCENES[name]
    recorded, verdict = record(name, directory)
    began = next((float(f["time"]) for f in recorded.faults if f.get("event") == "start"), 0.0)
    if verdict.valid != scene.valid:  # the run did not show what the scene is for
        raise RuntimeError(f"scene {name}: " + "; ".join(verdict.lines()))
    return sequence_svg(
        recorded, max(0.0, began - scene.before), began + scene.after, set(scene.messages)
    )
