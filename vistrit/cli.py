"""The command line: ``python -m vistrit COMMAND`` (also installed as ``vistrit``).

This is the only module that parses arguments, configures logging or prints; everything
it shows comes from the layers below. Errors are one line on stderr, never a traceback.

Exit codes: 0 success; 1 the work failed (a failed or cancelled task, a refused request,
a bad frame); 2 bad usage; 3 no such task; 4 no coordinator reachable; 130 interrupted.

Commands: ``coordinator``, ``worker`` (nodes); ``submit``, ``status``, ``result``,
``cancel``, ``cluster``, ``workers``, ``tasks`` (a client, built on
:class:`~vistrit.client.VistritClient`); ``trace`` (the wire tracer); ``decode``,
``bench``, ``demo``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import json
import logging
import os
import signal
import string
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from vistrit import __version__, defaults
from vistrit.bench import codec as codec_bench
from vistrit.client import (
    CoordinatorUnavailable,
    TaskError,
    TaskInfo,
    TaskNotFound,
    TaskRejected,
    VistritClient,
)
from vistrit.logic.scheduler import STRATEGIES
from vistrit.protocol import (
    FrameDecoder,
    ProtocolError,
    annotate_frame,
    encode_frame,
    format_table,
    frame_to_json,
)
from vistrit.protocol.examples import all_examples
from vistrit.protocol.frame import decode_frame, split_frames
from vistrit.transport import parse_address

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4

log = logging.getLogger("vistrit")


class UsageError(Exception):
    """Bad input on the command line: shown in one line, exit code 2."""


# -- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vistrit",
        description="Vistrit: an educational distributed computing platform.",
    )
    parser.add_argument("--version", action="version", version=f"vistrit {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much the nodes log to stderr (default INFO; DEBUG shows every frame)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_node_commands(commands)
    _add_client_commands(commands)
    _add_tool_commands(commands)
    return parser


def _add_node_commands(commands: Any) -> None:
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
        type=_positive_float,
        default=defaults.RESULT_RETENTION,
        metavar="SECONDS",
        help="how long finished tasks stay queryable (default %(default)g)",
    )
    coordinator.add_argument(
        "--prefetch",
        type=_non_negative_int,
        default=defaults.PREFETCH,
        help="tasks queued on each worker beyond its slots (default %(default)s; 0 for "
        f"strict priority order; at most {defaults.MAX_PREFETCH})",
    )
    coordinator.add_argument(
        "--heartbeat-timeout",
        type=_positive_float,
        default=defaults.HEARTBEAT_TIMEOUT,
        metavar="SECONDS",
        help="declare a worker dead after this long without a word from it (default %(default)g)",
    )
    coordinator.add_argument(
        "--retry-backoff",
        type=_positive_float,
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
        "--fsync",
        default="always",
        choices=["always", "batch", "never"],
        help="when the journal reaches the disk: before each acknowledgement (always, the "
        "default), four times a second (batch), or when the OS likes (never)",
    )
    coordinator.add_argument("--name", default="coordinator", help="the name in logs")
    coordinator.set_defaults(run=run_coordinator)

    worker = commands.add_parser(
        "worker",
        help="run a worker",
        description="Run a worker until interrupted, or until its coordinator goes away "
        "(exit 1). It prints one line, 'vistrit worker NAME joined HOST:PORT', once joined.",
    )
    _add_coordinator_option(worker)
    worker.add_argument(
        "--slots",
        type=_positive_int,
        default=defaults.WORKER_SLOTS,
        help="tasks run at once (default %(default)s)",
    )
    worker.add_argument(
        "--tag", action="append", default=[], help="offer this tag (repeat for several)"
    )
    worker.add_argument("--name", help="the worker's name (default: host and process id)")
    worker.add_argument(
        "--heartbeat",
        type=_positive_float,
        default=defaults.HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="seconds between heartbeats (default %(default)g)",
    )
    worker.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE, registering its @task functions (repeat for several)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=_non_negative_float,
        default=defaults.DRAIN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, let running tasks finish for this long before handing "
        "them back (default %(default)g)",
    )
    worker.add_argument(
        "--reconnect-timeout",
        type=_non_negative_float,
        default=defaults.RECONNECT_TIMEOUT,
        metavar="SECONDS",
        help="how long to keep trying to rejoin a lost coordinator (default %(default)g)",
    )
    worker.add_argument(
        "--allow-commands",
        action="store_true",
        help="run Command tasks (programs, without a shell); refused unless given",
    )
    worker.set_defaults(run=run_worker)


def _add_client_commands(commands: Any) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit a task and print its result",
        description="Submit one task, wait for it and print its output (exit 0), or its "
        "error (exit 1). With --no-wait, print the task's id at once.",
    )
    what = submit.add_mutually_exclusive_group()
    what.add_argument("--task", metavar="TEXT", help="the data, for --function (default echo)")
    what.add_argument(
        "--command",
        metavar="CMD",
        help="a program to run (needs a worker started with --allow-commands)",
    )
    what.add_argument("--expression", metavar="EXPR", help="arithmetic to compute, e.g. 2+3*4")
    submit.add_argument("--function", default="echo", help="the function to run on --task")
    submit.add_argument("--name", help="a name for the task")
    submit.add_argument(
        "--priority", default="normal", choices=["low", "normal", "high", "critical"]
    )
    submit.add_argument("--retries", type=_non_negative_int, default=0, help="further attempts")
    submit.add_argument(
        "--timeout",
        type=_non_negative_int,
        default=0,
        metavar="SECONDS",
        help="seconds an attempt may take (0: no limit)",
    )
    submit.add_argument("--tag", action="append", default=[], help="require a worker tag")
    submit.add_argument(
        "--after", action="append", default=[], metavar="ID", help="run after this task"
    )
    submit.add_argument("--no-wait", action="store_true", help="print the task id and return")
    submit.add_argument("--json", action="store_true", help="print the outcome as JSON")
    _add_coordinator_option(submit)
    submit.set_defaults(run=run_submit)

    for name, helptext, runner in (
        ("status", "show a task's state", run_status),
        ("result", "wait for a task and print its output", run_result),
        ("cancel", "cancel a task", run_cancel),
    ):
        command = commands.add_parser(name, help=helptext, description=helptext + ".")
        command.add_argument("task_id", metavar="ID", help="the task's id")
        command.add_argument("--json", action="store_true", help="print JSON")
        _add_coordinator_option(command)
        command.set_defaults(run=runner)

    for name, helptext, runner in (
        ("cluster", "show the cluster's status", run_cluster),
        ("workers", "list the workers", run_workers),
        ("tasks", "list the newest tasks", run_tasks),
    ):
        command = commands.add_parser(name, help=helptext, description=helptext + ".")
        command.add_argument("--json", action="store_true", help="print JSON")
        if name == "tasks":
            command.add_argument("--limit", type=_positive_int, default=20, help="how many")
        _add_coordinator_option(command)
        command.set_defaults(run=runner)


def _add_tool_commands(commands: Any) -> None:
    trace = commands.add_parser(
        "trace",
        help="relay connections to a coordinator, printing every frame",
        description="Listen on --listen, relay each connection to --upstream, and print "
        "every frame in both directions, annotated field by field. Point a worker or a "
        "client at --listen to watch its conversation.",
    )
    trace.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to listen")
    trace.add_argument(
        "--upstream",
        default=defaults.COORDINATOR,
        metavar="HOST:PORT",
        help="the coordinator (default %(default)s)",
    )
    trace.set_defaults(run=run_trace)

    decode = commands.add_parser(
        "decode",
        help="show the byte table of VistritProtocol frames given as hex",
        description="Decode frames given as hex (spaces allowed) and print, for every byte "
        "range, its offset, length, bytes, field, wire type and value. With no HEX, or "
        "'-', the hex is read from standard input. Several frames in a row are decoded in "
        "turn. A bad frame prints what was understood, then the precise error (exit 1).",
    )
    decode.add_argument("hex", nargs="*", metavar="HEX", help="the frame bytes, as hex")
    decode.add_argument(
        "--json", action="store_true", help="print each message as one line of JSON instead"
    )
    decode.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="read binary frames from PATH (a coordinator's journal.vst, say) instead of hex",
    )
    decode.set_defaults(run=run_decode)

    bench = commands.add_parser(
        "bench",
        help="measure Vistrit's speed",
        description="Run standard workloads and print their figures, each the median of "
        "--repeats runs. The cluster workloads start a coordinator and worker processes on "
        "127.0.0.1: throughput (W1: many 16-byte echo tasks from one client), latency (W2: "
        "sequential submit-and-wait round trips, 1 worker), scaling (W3: 32 tasks of ~50 ms "
        "of CPU on 1 and on 2 workers), payload (W4: echo tasks of 8 MiB). codec measures the "
        "protocol's encoder and decoder alone; detection the time to requeue the task of a "
        "killed or frozen worker; journal the throughput cost of --data-dir in each --fsync "
        "mode. Default: the four cluster workloads.",
    )
    bench.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help="codec, throughput, latency, scaling, payload, detection, journal, or all",
    )
    bench.add_argument(
        "--repeats",
        type=_positive_int,
        default=None,
        help="runs per figure (default 3; codec: 5 batches)",
    )
    bench.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="worker processes for W1 and W4 (default 2)",
    )
    bench.add_argument("--tasks", type=_positive_int, default=10_000, help="W1 tasks (10000)")
    bench.add_argument(
        "--round-trips", type=_positive_int, default=1_000, help="W2 round trips (1000)"
    )
    bench.add_argument("--cpu-tasks", type=_positive_int, default=32, help="W3 tasks (32)")
    bench.add_argument("--payload-tasks", type=_positive_int, default=20, help="W4 tasks (20)")
    bench.add_argument(
        "--payload-mib", type=_positive_float, default=8.0, help="W4 task size in MiB (8)"
    )
    bench.add_argument(
        "--seconds", type=_positive_float, default=0.5, help="codec: time per timed batch (0.5)"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON line per workload")
    bench.set_defaults(run=run_bench)

    demo = commands.add_parser(
        "demo",
        help="run a local cluster doing real work, then stop it",
        description="Start a coordinator and workers on this machine, run a word count "
        "over a text that ships with Vistrit as map/reduce (plus a few other tasks), check "
        "every answer, and stop everything. --wire shows the protocol instead: the frames "
        "of a task's life, one byte by byte.",
    )
    demo.add_argument("--workers", type=_positive_int, default=2, help="how many (default 2)")
    demo.add_argument("--wire", action="store_true", help="show the frames instead")
    demo.set_defaults(run=run_demo)


def _add_coordinator_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--coordinator",
        default=os.environ.get("VISTRIT_COORDINATOR", defaults.COORDINATOR),
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"the coordinator(s) (default: $VISTRIT_COORDINATOR or {defaults.COORDINATOR})",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _positive_float(text) if text.strip() not in ("0", "0.0") else 0.0
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative: {text}")
    return value


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- nodes ----------------------------------------------------------------------------------


def _until_signalled() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so nodes stop cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_coordinator(args: argparse.Namespace, out: TextIO) -> int:
    from vistrit.coordinator import Coordinator

    stop = _until_signalled()
    try:
        policy = defaults.Policy(
            strategy=args.strategy,
            retention=args.retention,
            prefetch=args.prefetch,
            heartbeat_timeout=args.heartbeat_timeout,
            retry_backoff=args.retry_backoff,
            retry_backoff_max=max(args.retry_backoff, defaults.RETRY_BACKOFF_MAX),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    coordinator = Coordinator(
        _address(args.bind), policy=policy, data_dir=args.data_dir, fsync=args.fsync, name=args.name
    )
    try:
        coordinator.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.bind}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = coordinator.address
    print(f"vistrit coordinator listening on {host}:{port}", file=out, flush=True)
    stop.wait()
    coordinator.stop()
    return EXIT_OK


def run_worker(args: argparse.Namespace, out: TextIO) -> int:
    from vistrit.worker import HandshakeRefused, Worker

    for module in args.tasks:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"cannot import --tasks {module}: {exc}") from None
    address = _address(args.coordinator.split(",")[0])
    worker = Worker(
        address,
        slots=args.slots,
        tags=args.tag,
        name=args.name,
        heartbeat_interval=args.heartbeat,
        allow_commands=args.allow_commands,
        reconnect_timeout=args.reconnect_timeout,
    )
    stop = _until_signalled()
    try:
        worker.start()
    except (OSError, HandshakeRefused) as exc:
        print(f"error: cannot join {address[0]}:{address[1]}: {_reason(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"vistrit worker {worker.name} joined {address[0]}:{address[1]}", file=out, flush=True)

    def stop_when_lost() -> None:
        worker.wait()
        stop.set()

    threading.Thread(target=stop_when_lost, name="worker watch", daemon=True).start()
    stop.wait()
    worker.stop(drain_timeout=0 if worker.error else args.drain_timeout)
    if worker.error:
        print(f"error: {worker.error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# -- client commands ------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> VistritClient:
    try:
        return VistritClient(args.coordinator)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_submit(args: argparse.Namespace, out: TextIO) -> int:
    options: dict[str, Any] = {
        "retries": args.retries,
        "timeout": args.timeout,
        "priority": args.priority,
        "tags": args.tag,
        "after": [_task_id(text) for text in args.after],
    }
    if args.name:
        options["name"] = args.name
    with _client(args) as client:
        if args.command is not None:
            future = client.submit_command(args.command, **options)
        elif args.expression is not None:
            future = client.submit_compute(args.expression, **options)
        else:
            future = client.submit(args.function, args.task or "", **options)
        if args.no_wait:
            # The answer to this query comes after the submission's: once it is here, a
            # refusal has been seen.
            with contextlib.suppress(TaskNotFound):
                client.status(future.task_id)
        else:
            concurrent.futures.wait([future])
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, TaskError):
                raise error
        if args.no_wait:
            print(future.task_id, file=out)
            return EXIT_OK
        return _print_outcome(client.status(future.task_id), args.json, out)


def _print_outcome(info: TaskInfo, as_json: bool, out: TextIO) -> int:
    if as_json:
        print(json.dumps(_info_json(info)), file=out)
    elif info.state == "Completed":
        output = info.output or b""
        text = output.decode("utf-8", "replace")
        print(text, file=out, end="" if text.endswith("\n") else "\n")
    elif info.state == "Failed":
        print(f"error: task {info.id} failed: {info.error}", file=sys.stderr)
    elif info.state == "Cancelled":
        print(f"error: task {info.id} was cancelled", file=sys.stderr)
    return EXIT_OK if info.state == "Completed" else EXIT_FAILED


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        info = client.status(_task_id(args.task_id))
    if args.json:
        print(json.dumps(_info_json(info)), file=out)
        return EXIT_OK
    lines = [
        ("task", str(info.id)),
        ("name", info.name),
        ("state", info.state + (f" ({info.progress}%)" if info.progress is not None else "")),
        ("priority", info.priority),
    ]
    if info.worker:
        lines.append(("worker", str(info.worker)))
    if info.error:
        lines.append(("error", info.error))
    if info.output is not None:
        lines.append(("output", _shorten(info.output.decode("utf-8", "replace"))))
    for label, value in lines:
        print(f"{label + ':':<10}{value}", file=out)
    return EXIT_OK


def run_result(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        info = client.wait(_task_id(args.task_id))
    return _print_outcome(info, args.json, out)


def run_cancel(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        task_id = _task_id(args.task_id)
        accepted = client.cancel(task_id)
        state = client.status(task_id).state
    if args.json:
        print(json.dumps({"task": str(task_id), "cancelled": accepted, "state": state}), file=out)
    elif accepted:
        print(f"cancelled {task_id}", file=out)
    else:
        print(f"error: cannot cancel {task_id}: it is {state}", file=sys.stderr)
    return EXIT_OK if accepted else EXIT_FAILED


def run_cluster(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        status = client.cluster_status()
    fields = {
        "leader": str(status.leader_id),
        "nodes": status.total_nodes,
        "workers": status.online_workers,
        "pending": status.pending_tasks,
        "running": status.running_tasks,
        "completed": status.completed_tasks,
        "failed": status.failed_tasks,
        "uptime": status.uptime_seconds,
    }
    if args.json:
        print(json.dumps(fields), file=out)
    else:
        for label, value in fields.items():
            print(f"{label + ':':<11}{value}{' s' if label == 'uptime' else ''}", file=out)
    return EXIT_OK


def run_workers(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        workers = client.workers()
    rows: list[dict[str, Any]] = [
        {
            "id": str(w.id),
            "name": w.name,
            "address": str(w.address),
            "state": w.state.name,
            "running": w.running_tasks,
            "slots": w.capabilities.max_concurrent_tasks,
            "tags": list(w.capabilities.tags),
        }
        for w in workers
    ]
    if args.json:
        print(json.dumps(rows), file=out)
        return EXIT_OK
    _table(
        out,
        ["name", "state", "running", "slots", "tags", "address", "id"],
        [
            [
                r["name"] or "",
                r["state"],
                f"{r['running']}",
                f"{r['slots']}",
                ",".join(r["tags"]),
                r["address"],
                r["id"],
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def run_tasks(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        tasks = client.tasks(args.limit)
    if args.json:
        print(json.dumps([_info_json(info) for info in tasks]), file=out)
        return EXIT_OK
    _table(
        out,
        ["id", "state", "priority", "name"],
        [[str(t.id), t.state, t.priority, t.name] for t in tasks],
    )
    return EXIT_OK


def _table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out
        )


def _info_json(info: TaskInfo) -> dict[str, Any]:
    output: dict[str, Any] = {"output": None}
    if info.output is not None:
        try:
            output = {"output": info.output.decode("utf-8")}
        except UnicodeDecodeError:
            output = {"output": None, "output_hex": info.output.hex()}
    return {
        "id": str(info.id),
        "name": info.name,
        "state": info.state,
        "priority": info.priority,
        "worker": str(info.worker) if info.worker else None,
        "progress": info.progress,
        "error": info.error,
        **output,
    }


def _task_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UsageError(f"not a task id: {text!r}") from None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# -- tools ----------------------------------------------------------------------------------


def run_trace(args: argparse.Namespace, out: TextIO) -> int:
    from vistrit.tracer import TracedFrame, TraceRelay

    lock = threading.Lock()

    def show(frame: TracedFrame) -> None:
        arrow = "client -> coordinator" if frame.direction == "->" else "coordinator -> client"
        with lock:
            print(
                f"\n#{frame.connection} {arrow}: {frame.message} ({len(frame.data)} bytes)",
                file=out,
            )
            if frame.spans:
                print(format_table(frame.spans, frame.data), file=out)
            if frame.error is not None:
                print(f"!! {type(frame.error).__name__}: {frame.error}", file=out)
            out.flush()

    relay = TraceRelay(_address(args.listen), _address(args.upstream), show)
    stop = _until_signalled()
    try:
        relay.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = relay.address
    print(
        f"vistrit trace listening on {host}:{port}, relaying to {args.upstream}",
        file=out,
        flush=True,
    )
    stop.wait()
    relay.stop()
    return EXIT_OK


# -- decode, bench, demo ---------------------------------------------------------------------


def parse_hex(text: str) -> bytes:
    """Hex digits, with any spacing, and optional ``0x`` prefixes, as bytes."""
    cleaned = "".join(text.split()).replace("0x", "").replace("0X", "")
    bad = next((char for char in cleaned if char not in string.hexdigits), None)
    if bad is not None:
        raise UsageError(f"not hex: {bad!r}")
    if len(cleaned) % 2:
        raise UsageError(f"odd number of hex digits ({len(cleaned)})")
    if not cleaned:
        raise UsageError("no hex given")
    return bytes.fromhex(cleaned)


def run_decode(args: argparse.Namespace, out: TextIO) -> int:
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        if not data:
            raise UsageError(f"{args.file} is empty")
    else:
        text = " ".join(args.hex) if args.hex and args.hex != ["-"] else sys.stdin.read()
        data = parse_hex(text)
    frames, rest = split_frames(data)
    if rest:
        frames.append(rest)  # a short last frame: the annotator says what is missing
    for number, frame in enumerate(frames, 1):
        try:
            if args.json:
                print(json.dumps(frame_to_json(decode_frame(frame))), file=out)
                continue
            spans = annotate_frame(frame)
        except ProtocolError as exc:
            if not args.json and exc.spans:
                print(format_table(exc.spans, frame), file=out)
            print(
                f"error: frame {number}: {type(exc).__name__} ({exc.code.name}): {exc}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if len(frames) > 1:
            print(f"frame {number}", file=out)
        print(format_table(spans, frame), file=out)
    return EXIT_OK


def run_bench(args: argparse.Namespace, out: TextIO) -> int:
    from vistrit.bench import cluster as cluster_bench

    known = (*cluster_bench.WORKLOADS, *cluster_bench.MORE_WORKLOADS)
    chosen = args.workloads or list(cluster_bench.WORKLOADS)
    if "all" in chosen:
        chosen = ["codec", *known]
    unknown = [w for w in chosen if w != "codec" and w not in known]
    if unknown:
        raise UsageError(
            f"unknown workload {unknown[0]!r}; choose from codec, {', '.join(known)} or all"
        )
    if "codec" in chosen:
        _bench_codec(args, out)
    for workload in (w for w in chosen if w != "codec"):
        figures = cluster_bench.run(
            workload,
            repeats=args.repeats or 3,
            workers=args.workers,
            tasks=args.tasks,
            round_trips=args.round_trips,
            cpu_tasks=args.cpu_tasks,
            payload_tasks=args.payload_tasks,
            payload_bytes=int(args.payload_mib * 1024 * 1024),
        )
        if args.json:
            print(json.dumps({"bench": workload, **figures.as_dict()}), file=out, flush=True)
        else:
            shown = ", ".join(f"{key} {value:,.1f}" for key, value in figures.figures.items())
            print(
                f"{figures.workload}: {shown}  (median of {figures.settings['repeats']})",
                file=out,
                flush=True,
            )
    return EXIT_OK


def _bench_codec(args: argparse.Namespace, out: TextIO) -> None:
    repeats = args.repeats or 5
    results = codec_bench.run(seconds=args.seconds, repeats=repeats)
    if args.json:
        for figures in results:
            print(json.dumps({"bench": "codec", **figures.as_dict()}), file=out)
        return
    print(f"codec: medians of {repeats} batches of ~{args.seconds} s", file=out)
    header = (
        f"{'message':<22}{'bytes':>9}{'encode/s':>11}{'decode/s':>11}{'round trips/s':>15}"
        f"{'enc MB/s':>10}{'dec MB/s':>10}{'bare limit/s':>14}{'ratio':>7}"
    )
    print(header, file=out)
    for f in results:
        print(
            f"{f.workload + ' ' + f.message:<22}{f.frame_bytes:>9,}{f.encode_per_s:>11,.0f}"
            f"{f.decode_per_s:>11,.0f}{f.round_trip_per_s:>15,.0f}{f.encode_mb_s:>10,.1f}"
            f"{f.decode_mb_s:>10,.1f}{f.baseline_round_trip_per_s:>14,.0f}"
            f"{f.ratio_to_baseline:>6.1f}x",
            file=out,
        )
    print(
        "ratio: round-trip time over the bare limit (struct pack/unpack + crc32 of the same frame)",
        file=out,
    )


_SENDERS = {
    "Handshake": "worker → coordinator",
    "HandshakeAck": "coordinator → worker",
    "Heartbeat": "worker → coordinator",
    "HeartbeatAck": "coordinator → worker",
    "Disconnect": "worker → coordinator",
    "TaskSubmit": "client → coordinator",
    "TaskSubmitAck": "coordinator → client",
    "TaskAssign": "coordinator → worker",
    "TaskAssignAck": "worker → coordinator",
    "TaskStatus": "worker → coordinator",
    "TaskResult": "worker → coordinator",
    "TaskCancel": "client → coordinator",
    "TaskQuery": "client → coordinator",
    "TaskQueryResponse": "coordinator → client",
    "ClusterStatusRequest": "client → coordinator",
    "ClusterStatusResponse": "coordinator → client",
    "WorkerListRequest": "client → coordinator",
    "WorkerListResponse": "coordinator → client",
    "ElectionStart": "coordinator → coordinator",
    "ElectionVote": "coordinator → coordinator",
    "LeaderAnnounce": "coordinator → all",
    "Error": "coordinator → client",
}


def run_wire_demo(out: TextIO) -> int:
    examples = all_examples()
    frames = {name: encode_frame(message) for name, message in examples.items()}
    print(
        "The frames of a small cluster's life, as VistritProtocol v1 puts them on the wire:",
        file=out,
    )
    for number, (name, frame) in enumerate(frames.items(), 1):
        print(
            f"{number:>3}. {_SENDERS[name]:<26}{name:<22}{len(frame):>5} bytes  "
            f"{frame[:14].hex(' ')} …",
            file=out,
        )
    submit = frames["TaskSubmit"]
    print("\nThe TaskSubmit frame, byte by byte:", file=out)
    print(format_table(annotate_frame(submit), submit), file=out)

    stream = b"".join(frames.values())
    decoder = FrameDecoder()
    decoded = []
    for index in range(len(stream)):  # the worst case for a reader: one byte per recv()
        decoder.feed(stream[index : index + 1])
        message = decoder.next_message()
        if message is not None:
            decoded.append(message)
    same = decoded == list(examples.values())
    print(
        f"\nDecoded the {len(stream):,}-byte stream fed one byte at a time: "
        f"{len(decoded)} messages, {'all equal to' if same else 'NOT equal to'} what was sent.",
        file=out,
    )
    print("Next: python -m vistrit decode HEX  ·  python -m vistrit bench codec", file=out)
    return EXIT_OK if same else EXIT_FAILED


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.wire:
        return run_wire_demo(out)
    from vistrit import demo

    print(f"Vistrit demo: a coordinator and {args.workers} workers on this machine", file=out)
    ok = demo.run(args.workers, report=lambda line: print(line, file=out, flush=True))
    print("all answers correct" if ok else "SOME ANSWERS WERE WRONG", file=out)
    return EXIT_OK if ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args, out or sys.stdout))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TaskRejected as exc:
        print(f"error: the coordinator refused the task: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TaskNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (CoordinatorUnavailable, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
