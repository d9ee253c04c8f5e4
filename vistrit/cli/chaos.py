"""The lab's commands: ``chaos`` (break a real cluster on a seeded schedule, and check it)
and ``check`` (check a run's history again).

Exit codes: 0 the checker found nothing wrong; 1 it found a violation (or the run could
not be made); 2 bad arguments, or a directory that holds no run; 130 interrupted (Ctrl-C
or SIGTERM), after everything the run started is stopped.

Read next: :mod:`vistrit.chaos`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

from vistrit.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
    until_signalled,
)

#: Ctrl-C or SIGTERM: the run was stopped (as the other commands).
EXIT_INTERRUPTED = 130

#: The most nodes of each kind a lab may have (each is a process, or a namespace).
MAX_NODES = 16

#: The most tasks a run may submit (each is a few lines of history).
MAX_TASKS = 1_000_000


def add_commands(commands: Any) -> None:
    """Add ``chaos`` and ``check``."""
    chaos = commands.add_parser(
        "chaos",
        help="run a real cluster, break it on a seeded schedule, and check what it did",
        description="Start coordinators and workers as processes of this machine, each "
        "coordinator behind a relay; submit tasks from clients while a nemesis kills, "
        "pauses, partitions and slows nodes, on a schedule drawn from --seed; then check "
        "the history and write DIR/report.html. Exit 0 if the checker finds nothing "
        "wrong, 1 if it finds a violation, 2 on bad arguments. Everything started is "
        "stopped at the end.",
    )
    chaos.add_argument(
        "--coordinators", type=positive_int, default=3, metavar="N", help="coordinators (default 3)"
    )
    chaos.add_argument(
        "--workers", type=positive_int, default=3, metavar="M", help="workers (default 3)"
    )
    chaos.add_argument(
        "--clients", type=positive_int, default=2, metavar="C", help="clients (default 2)"
    )
    chaos.add_argument("--slots", type=positive_int, default=2, help="slots per worker (default 2)")
    chaos.add_argument(
        "--tasks", type=positive_int, default=300, metavar="K", help="tasks (default 300)"
    )
    chaos.add_argument(
        "--rate",
        type=positive_float,
        default=20.0,
        help="tasks submitted a second, all clients together (default 20)",
    )
    chaos.add_argument(
        "--work-ms",
        type=non_negative_int,
        default=200,
        help="how long each task works, in milliseconds (default 200)",
    )
    chaos.add_argument(
        "--nemesis",
        default="kill,pause,partition,slow",
        metavar="KIND[,KIND...]",
        help="the faults, some of kill, pause, partition, slow (default: all four)",
    )
    chaos.add_argument(
        "--interval",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="the mean pause between faults (default 2)",
    )
    chaos.add_argument(
        "--fault-duration",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="the mean length of a fault (default 2)",
    )
    chaos.add_argument(
        "--seed", type=non_negative_int, default=1, help="the schedule's seed (default 1)"
    )
    chaos.add_argument(
        "--hosts",
        choices=["local", "netns"],
        default="local",
        help="local: every node on 127.0.0.1; netns: each in a network "
        "namespace of its own (Linux, as root)",
    )
    chaos.add_argument(
        "--settle",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long outcomes may take once the faults are over (default 60)",
    )
    chaos.add_argument(
        "--docs-url",
        default="protocol.html",
        metavar="URL",
        help="the protocol page of these docs, which the report links each frame to "
        "(default: protocol.html, beside the report)",
    )
    chaos.add_argument(
        "--scene",
        choices=["election", "worker-lost", "split-brain"],
        help="run a scene of the docs instead: one scripted fault on a small cluster (the "
        "options above are then not used)",
    )
    chaos.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="where the run's files go (a new directory)",
    )
    chaos.set_defaults(run=run_chaos)

    check = commands.add_parser(
        "check",
        help="check a chaos run's history",
        description="Check DIR/history.jsonl (with DIR/frames.jsonl and DIR/terms.jsonl "
        "if there): every acknowledged task has one final outcome, the right one, that "
        "never changes; no outcome for a task never submitted; at most one coordinator "
        "accepted work in any term. Names every violating task. Exit 0 if none, 1 if any, "
        "2 if DIR holds no readable history.",
    )
    check.add_argument("directory", type=Path, metavar="DIR", help="the run's directory")
    check.set_defaults(run=run_check)


def run_chaos(args: argparse.Namespace, out: TextIO) -> int:
    """``vistrit chaos``: see the parser's description."""
    from vistrit.chaos.hosts import netns_unavailable
    from vistrit.chaos.lab import LabConfig
    from vistrit.chaos.nemesis import KINDS
    from vistrit.chaos.run import ChaosConfig, Interrupted, run
    from vistrit.chaos.scenes import SCENES
    from vistrit.chaos.workload import WorkloadConfig

    kinds = tuple(kind.strip() for kind in args.nemesis.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"--nemesis: {', '.join(unknown) or 'none given'}: choose among {', '.join(KINDS)}"
        )
    for option in ("coordinators", "workers", "clients"):
        if getattr(args, option) > MAX_NODES:
            raise UsageError(f"--{option}: at most {MAX_NODES}")
    for option, most in (("tasks", MAX_TASKS), ("seed", 2**32 - 1), ("slots", 64)):
        if getattr(args, option) > most:
            raise UsageError(f"--{option}: at most {most:,}")
    if args.hosts == "netns" and (reason := netns_unavailable()) is not None:
        raise UsageError(f"--hosts netns: {reason}")
    if (args.out / "history.jsonl").exists():
        raise UsageError(f"--out: {args.out} already holds a run")
    if args.scene is not None:
        config = SCENES[args.scene].config(args.out)
    else:
        lab = LabConfig(args.out, args.coordinators, args.workers, args.clients, args.slots,
                        args.hosts, args.seed)  # fmt: skip
        workload = WorkloadConfig(args.tasks, args.rate, args.work_ms, args.seed)
        config = ChaosConfig(lab, workload, kinds, args.interval, args.fault_duration, args.settle)
    config = dataclasses.replace(config, docs=args.docs_url)
    stop = until_signalled()  # Ctrl-C and SIGTERM end the run, which stops what it started
    try:
        verdict = run(config, lambda line: print(line, file=out, flush=True), stop)
    except Interrupted:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (RuntimeError, OSError) as exc:
        print(f"error: the run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in verdict.lines():
        print(line, file=out)
    print(f"report: {args.out / 'report.html'}", file=out)
    return EXIT_OK if verdict.valid else EXIT_FAILED


def run_check(args: argparse.Namespace, out: TextIO) -> int:
    """``vistrit check DIR``."""
    from vistrit.chaos.checker import check
    from vistrit.chaos.history import HistoryError

    try:
        verdict = check(args.directory)
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in verdict.lines():
        print(line, file=out)
    return EXIT_OK if verdict.valid else EXIT_FAILED
