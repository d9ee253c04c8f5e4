"""``coordinator`` and ``worker``: run a node until a signal, then stop it cleanly.

Read next: :mod:`vistrit.cli.tasks`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from vistrit import defaults
from vistrit.addresses import parse_addresses
from vistrit.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    UsageError,
    add_coordinator_option,
    add_token_option,
    address,
    credentials_of,
    node_process,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    reason,
    tls_of,
    until_signalled,
    wait_for,
)
from vistrit.coordinator.journal import JournalError
from vistrit.logic.scheduler import STRATEGIES


def add_commands(commands: Any) -> None:
    """Add the node subcommands: ``coordinator`` and ``worker``."""
    coordinator = commands.add_parser(
        "coordinator",
        help="run a coordinator",
        description="Run a coordinator until interrupted (Ctrl-C or SIGTERM). It prints one "
        "line, 'vistrit coordinator listening on HOST:PORT', once it accepts connections.",
    )
    coordinator.add_argument(
        "--bind",
        default=f"{defaults.HOST}:{defaults.PORT}",
        metavar="HOST:PORT",
        help="where to listen (default %(default)s; 0.0.0.0:7878 for other machines; port 0 "
        "picks a free port)",
    )
    coordinator.add_argument(
        "--strategy", default="least-loaded", choices=STRATEGIES, help="how to pick a worker"
    )
    coordinator.add_argument(
        "--retention",
        type=positive_float,
        default=defaults.RESULT_RETENTION,
        metavar="SECONDS",
        help="how long finished tasks stay queryable (default %(default)g)",
    )
    coordinator.add_argument(
        "--retain-bytes",
        type=non_negative_int,
        default=defaults.RETAIN_BYTES,
        metavar="BYTES",
        help="the most bytes of inputs and results kept, all clients together; past it the "
        "oldest finished tasks are forgotten early (default %(default)s)",
    )
    coordinator.add_argument(
        "--prefetch",
        type=non_negative_int,
        default=defaults.PREFETCH,
        help="tasks queued on each worker beyond its slots (default %(default)s; 0 for "
        f"strict priority order; at most {defaults.MAX_PREFETCH})",
    )
    coordinator.add_argument(
        "--quick-prefetch",
        type=non_negative_int,
        default=defaults.QUICK_PREFETCH,
        help="tasks queued on a worker beyond its slots while its runs are quick: "
        f"{defaults.QUICK_RUNS} in a row under a millisecond each (default %(default)s; "
        f"never fewer than --prefetch; at most {defaults.MAX_PREFETCH})",
    )
    coordinator.add_argument(
        "--max-slots",
        type=positive_int,
        default=defaults.MAX_SLOTS,
        help="the most slots believed of any worker, whatever it claims (default %(default)s)",
    )
    limits = coordinator.add_argument_group(
        "limits", "What one node may take of this coordinator (see the security page)."
    )
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=defaults.MAX_CONNECTIONS,
        help="connections served at once; past it, a new one is told so and closed "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=non_negative_float,
        default=defaults.IDLE_TIMEOUT,
        metavar="SECONDS",
        help="close a worker's or client's connection silent this long (default %(default)g; "
        "0: never)",
    )
    limits.add_argument(
        "--max-pending-per-client",
        type=positive_int,
        default=defaults.MAX_PENDING_PER_CLIENT,
        metavar="TASKS",
        help="unfinished tasks one client may have (default %(default)s)",
    )
    limits.add_argument(
        "--max-retained-bytes-per-client",
        type=positive_int,
        default=defaults.MAX_RETAINED_BYTES_PER_CLIENT,
        metavar="BYTES",
        help="bytes of inputs and results kept for one client (default %(default)s)",
    )
    coordinator.add_argument(
        "--heartbeat-timeout",
        type=positive_float,
        default=defaults.HEARTBEAT_TIMEOUT,
        metavar="SECONDS",
        help="declare a worker dead after this long without a word from it (default %(default)g)",
    )
    coordinator.add_argument(
        "--retry-backoff",
        type=positive_float,
        default=defaults.RETRY_BACKOFF,
        metavar="SECONDS",
        help="the pause before a failed task's second attempt, doubling after each further "
        f"failure up to {defaults.RETRY_BACKOFF_MAX:g} s (default %(default)g)",
    )
    coordinator.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep a journal in DIR, so that a restart loses no acknowledged task "
        "(default: memory only)",
    )
    coordinator.add_argument(
        "--repair",
        action="store_true",
        help="start even if the journal is damaged before its end: keep every intact record "
        "and save the damaged bytes beside it (default: refuse, naming the file and offset)",
    )
    coordinator.add_argument(
        "--fsync",
        default="always",
        choices=["always", "batch", "never"],
        help="when the journal reaches the disk: before each acknowledgement (always, the "
        "default), four times a second (batch), or when the OS likes (never)",
    )
    coordinator.add_argument("--name", default="coordinator", help="the name in logs")
    coordinator.add_argument(
        "--dashboard",
        metavar="HOST:PORT",
        help="also serve the dashboard there (port 0 picks a free port); its URL, with the "
        "token, is printed on a second line: 'vistrit dashboard at URL'",
    )
    add_token_option(coordinator)
    coordinator.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="also admit nodes that cannot authenticate (protocol v1-v3: the reference "
        "implementation), with a warning for each; v4 nodes still prove their credential",
    )
    cluster = coordinator.add_argument_group(
        "several coordinators",
        "Run this coordinator as one of several: the highest --id alive leads (the bully "
        "algorithm), the others keep a copy of its tasks and take over when it fails.",
    )
    cluster.add_argument(
        "--id",
        type=positive_int,
        metavar="N",
        help="this coordinator's rank: a positive number, unique in the cluster",
    )
    cluster.add_argument(
        "--peers",
        metavar="ID@HOST:PORT[,...]",
        help="the coordinators of the cluster (give all the same list); this one's own entry "
        "is the address workers and clients are sent to when it leads (default: --bind)",
    )
    cluster.add_argument(
        "--no-takeover",
        dest="takeover",
        action="store_false",
        help="when this coordinator (re)joins while a lower-ranked one leads, follow it until "
        "it fails, instead of taking over at once (the bully's rule, the default)",
    )
    cluster.add_argument(
        "--leader-timeout",
        type=positive_float,
        default=defaults.LEADER_TIMEOUT,
        metavar="SECONDS",
        help="start an election after this long without a word from the leader, which "
        f"heartbeats every {defaults.LEADER_HEARTBEAT:g} s (default %(default)g)",
    )
    coordinator.set_defaults(run=run_coordinator)

    worker = commands.add_parser(
        "worker",
        help="run a worker",
        description="Run a worker until interrupted, or until its coordinator goes away "
        "(exit 1). It prints one line, 'vistrit worker NAME joined HOST:PORT', once joined.",
    )
    add_coordinator_option(worker)
    worker.add_argument(
        "--slots",
        type=positive_int,
        default=defaults.WORKER_SLOTS,
        help="tasks run at once (default %(default)s)",
    )
    worker.add_argument(
        "--tag", action="append", default=[], help="offer this tag (repeat for several)"
    )
    worker.add_argument("--name", help="the worker's name (default: host and process id)")
    worker.add_argument(
        "--heartbeat",
        type=positive_float,
        default=defaults.HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="seconds between heartbeats (default %(default)g)",
    )
    worker.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE: its @task functions run by name, and its functions may be "
        "called by import path (MODULE:function); no other module's ever run (repeat for "
        "several)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=non_negative_float,
        default=defaults.DRAIN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, let running tasks finish for this long before handing "
        "them back (default %(default)g)",
    )
    worker.add_argument(
        "--reconnect-timeout",
        type=non_negative_float,
        default=defaults.RECONNECT_TIMEOUT,
        metavar="SECONDS",
        help="how long to keep trying to rejoin a lost coordinator (default %(default)g)",
    )
    worker.add_argument(
        "--allow-commands",
        type=program_names,
        default=(),
        metavar="PROG[,PROG...]",
        help="run Command tasks of these programs only (without a shell, unless one is "
        "named); every command is refused unless given",
    )
    worker.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="also join a coordinator that does not authenticate (the reference "
        "implementation, protocol v1), with a warning; never without this",
    )
    worker.set_defaults(run=run_worker)


def program_names(text: str) -> tuple[str, ...]:
    """An argparse type: ``echo,sh`` as the programs a worker may run."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one program")
    return names


def run_coordinator(args: argparse.Namespace, out: TextIO) -> int:
    """Run a coordinator until Ctrl-C or SIGTERM."""
    from vistrit.coordinator import Coordinator

    stop = until_signalled()
    try:
        policy = defaults.Policy(
            strategy=args.strategy,
            retention=args.retention,
            retain_bytes=args.retain_bytes,
            prefetch=args.prefetch,
            quick_prefetch=args.quick_prefetch,
            heartbeat_timeout=args.heartbeat_timeout,
            retry_backoff=args.retry_backoff,
            retry_backoff_max=max(args.retry_backoff, defaults.RETRY_BACKOFF_MAX),
            max_slots=args.max_slots,
            max_pending_per_client=args.max_pending_per_client,
            max_retained_bytes_per_client=args.max_retained_bytes_per_client,
        )
        limits = defaults.Limits(
            idle_timeout=args.idle_timeout, max_connections=args.max_connections
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    dashboard_bind = address(args.dashboard) if args.dashboard else None
    coordinator = Coordinator(
        address(args.bind),
        policy=policy,
        limits=limits,
        data_dir=args.data_dir,
        fsync=args.fsync,
        name=args.name,
        cluster=cluster_config(args),
        credentials=credentials_of(args, create=True),
        allow_unauthenticated=args.allow_unauthenticated,
        repair=args.repair,
        tls=tls_of(args),
    )
    try:
        coordinator.start()
    except JournalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"error: cannot listen on {args.bind}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    node_process()
    host, port = coordinator.address
    print(f"vistrit coordinator listening on {host}:{port}", file=out, flush=True)
    try:
        dashboard = start_dashboard(coordinator, dashboard_bind, out)
    except OSError as exc:
        print(f"error: the dashboard cannot listen: {exc.strerror or exc}", file=sys.stderr)
        coordinator.stop()
        return EXIT_FAILED
    coordinator.on_failure = stop.set  # a journal it cannot write ends the wait too
    wait_for(stop)
    if dashboard is not None:
        dashboard.stop()
    coordinator.stop()
    if coordinator.failure is not None:
        print(f"error: {coordinator.failure}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def start_dashboard(coordinator: Any, bind: tuple[str, int] | None, out: TextIO) -> Any:
    """The coordinator's dashboard at *bind*, started, its URL printed; None without one.
    ``OSError`` if it cannot listen."""
    if bind is None:
        return None
    from vistrit.dashboard import Dashboard

    dashboard = Dashboard(coordinator, bind)
    dashboard.start()
    print(f"vistrit dashboard at {dashboard.url}", file=out, flush=True)
    return dashboard


def cluster_config(args: argparse.Namespace) -> Any:
    """The coordinator's place in a cluster, from --id and --peers (None: it runs alone)."""
    from vistrit.coordinator.peers import ClusterConfig, cluster_of

    if args.id is None and args.peers is None:
        return None
    if args.id is None or not args.peers:
        raise UsageError("--id and --peers go together: give both, or neither")
    try:
        peers, own = cluster_of(args.peers, args.id)
        if own is not None:
            from vistrit.transport import resolve

            try:
                resolve(own[0])
            except OSError as exc:
                raise ValueError(
                    f"cannot resolve this coordinator's address {own[0]}: {exc}"
                ) from None
        heartbeat = min(defaults.LEADER_HEARTBEAT, args.leader_timeout / 5)
        return ClusterConfig(
            rank=args.id,
            peers=peers,
            advertise=own,
            takeover=args.takeover,
            leader_timeout=args.leader_timeout,
            leader_heartbeat=heartbeat,
            replication_timeout=2 * args.leader_timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_worker(args: argparse.Namespace, out: TextIO) -> int:
    """Run a worker until Ctrl-C or SIGTERM (then drain), or until it loses its coordinator."""
    from vistrit.worker import HandshakeRefused, Worker

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script finds ./mytasks.py, as -m does
    for module in args.tasks:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"cannot import --tasks {module}: {exc}") from None
    try:
        targets = parse_addresses(args.coordinator)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    worker = Worker(
        targets,
        slots=args.slots,
        tags=args.tag,
        name=args.name,
        heartbeat_interval=args.heartbeat,
        allow_commands=args.allow_commands,
        modules=args.tasks,
        reconnect_timeout=args.reconnect_timeout,
        credentials=credentials_of(args),
        allow_unauthenticated=args.allow_unauthenticated,
        tls=tls_of(args),
    )
    try:
        worker.start()  # Ctrl-C while it waits for a coordinator: "interrupted", exit 130
    except (OSError, HandshakeRefused) as exc:
        where = ",".join(f"{host}:{port}" for host, port in targets)
        print(f"error: cannot join {where}: {reason(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    stop = until_signalled()
    node_process()
    host, port = worker.coordinator
    print(f"vistrit worker {worker.name} joined {host}:{port}", file=out, flush=True)

    def stop_when_lost() -> None:
        worker.wait()
        stop.set()

    threading.Thread(target=stop_when_lost, name="worker watch", daemon=True).start()
    wait_for(stop)
    worker.stop(drain_timeout=0 if worker.error else args.drain_timeout)
    if worker.error:
        print(f"error: {worker.error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
