"""The client commands: ``submit``, ``status``, ``result``, ``cancel``, ``cluster``,
``workers`` and ``tasks``, each a few calls of :class:`~vistrit.client.VistritClient`.

Read next: :mod:`vistrit.cli.tools`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from vistrit.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_coordinator_option,
    credentials_of,
    non_negative_float,
    non_negative_int,
    positive_int,
    shorten,
    table,
    tls_of,
)
from vistrit.client import (
    TaskError,
    TaskFuture,
    TaskInfo,
    TaskNotFound,
    VistritClient,
    VistritError,
)
from vistrit.defaults import TASK_LIST_LIMIT
from vistrit.logic.ids import match_prefix, prefix_of, short
from vistrit.logic.tasks import STATES
from vistrit.protocol.errors import ProtocolError
from vistrit.protocol.types import TaskPayload

#: The most bytes a task's data read from standard input may have (a frame carries 16 MiB).
MAX_STDIN = 15 * 1024 * 1024

#: The exit code after Ctrl-C, as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130

#: How many of the newest tasks a prefix is looked for among.
MAX_SEARCHED = 100 * TASK_LIST_LIMIT

#: How often a waiting ``submit`` looks at its task's news.
WATCH_INTERVAL = 0.2


def add_commands(commands: Any) -> None:
    """Add the task subcommands: submit, status, result, cancel, cluster, workers, tasks."""
    submit = commands.add_parser(
        "submit",
        help="submit a task and print its result",
        description="Submit one task, wait for it and print its output (exit 0), or its "
        "error (exit 1). With --no-wait, print the task's id at once.",
    )
    what = submit.add_mutually_exclusive_group()
    what.add_argument(
        "--task",
        metavar="TEXT",
        help="the data, for --function (default echo); '-', or no --task with data piped "
        "in, reads standard input",
    )
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
    submit.add_argument("--retries", type=non_negative_int, default=0, help="further attempts")
    submit.add_argument(
        "--timeout",
        type=non_negative_float,
        default=0,
        metavar="SECONDS",
        help="seconds an attempt may take (0: no limit; rounded up to whole seconds)",
    )
    submit.add_argument("--tag", action="append", default=[], help="require a worker tag")
    submit.add_argument(
        "--after", action="append", default=[], metavar="ID", help="run after this task"
    )
    submit.add_argument("--no-wait", action="store_true", help="print the task id and return")
    submit.add_argument(
        "--progress",
        action="store_true",
        help="while it waits, show the task's progress on standard error",
    )
    submit.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_coordinator_option(submit)
    submit.set_defaults(run=run_submit)

    for name, helptext, runner in (
        ("status", "show a task's state", run_status),
        ("result", "wait for a task and print its output", run_result),
        ("cancel", "cancel a task", run_cancel),
    ):
        command = commands.add_parser(name, help=helptext, description=helptext + ".")
        command.add_argument(
            "task_id", metavar="ID", help="the task's id, or a unique prefix of it (4+ digits)"
        )
        command.add_argument("--json", action="store_true", help="print JSON")
        add_coordinator_option(command)
        command.set_defaults(run=runner)

    for name, helptext, runner in (
        ("cluster", "show the cluster's status", run_cluster),
        ("workers", "list the workers", run_workers),
        ("tasks", "list the newest tasks", run_tasks),
    ):
        command = commands.add_parser(name, help=helptext, description=helptext + ".")
        command.add_argument("--json", action="store_true", help="print JSON")
        if name == "tasks":
            command.add_argument(
                "--state",
                choices=STATES,
                type=str.capitalize,
                help="only tasks in this state (default: every state)",
            )
            command.add_argument(
                "--limit",
                type=positive_int,
                default=20,
                help=f"how many (default %(default)s, at most {TASK_LIST_LIMIT})",
            )
            command.add_argument(
                "--offset",
                type=non_negative_int,
                default=0,
                help="skip this many of the newest first (default %(default)s)",
            )
        add_coordinator_option(command)
        command.set_defaults(run=runner)


def _client(args: argparse.Namespace) -> VistritClient:
    try:
        return VistritClient(args.coordinator, credentials=credentials_of(args), tls=tls_of(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_submit(args: argparse.Namespace, out: TextIO) -> int:
    """Submit one task and, unless told not to wait, print its result."""
    with _client(args) as client:
        options: dict[str, Any] = {
            "retries": args.retries,
            "timeout": args.timeout,
            "priority": args.priority,
            "tags": args.tag,
            "after": [find_task(client, text) for text in args.after],
        }
        if args.name:
            options["name"] = args.name
        if args.command is not None:
            future = client.submit_command(args.command, **options)
        elif args.expression is not None:
            future = client.submit_compute(args.expression, **options)
        else:
            future = client.submit(args.function, _task_data(args.task), **options)
        if args.no_wait:
            # The answer to this query comes after the submission's: once it is here, a
            # refusal has been seen.
            with contextlib.suppress(TaskNotFound):
                client.status(future.task_id)
        else:
            try:
                _watch(future, args.progress)
            except KeyboardInterrupt:
                print(
                    f"interrupted: task {future.task_id} is still queued or running; cancel it "
                    f"with: python -m vistrit cancel {future.task_id}",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, TaskError):
                raise error
        if args.no_wait:
            print(future.task_id, file=out)
            return EXIT_OK
        return _print_outcome(client.status(future.task_id), args.json, out)


def _watch(future: TaskFuture, progress: bool) -> None:
    """Wait for the task; on standard error, say why it waits (after a second) and, with
    *progress*, each new percentage its function reports.

    Ctrl-C raises ``KeyboardInterrupt`` here, between two looks, never from inside the
    wait: there it could leave a future's lock taken, and closing the client would then
    wait for that lock for ever."""
    interrupted = threading.Event()
    with _sigint_sets(interrupted):
        shown: tuple[str | None, int | None] = (None, None)
        started = time.monotonic()
        while not concurrent.futures.wait([future], timeout=WATCH_INTERVAL).done:
            if interrupted.is_set():
                raise KeyboardInterrupt
            waiting = future.waiting if time.monotonic() - started >= 1.0 else None
            percent = future.progress if progress else None
            if waiting and waiting != shown[0]:
                print(waiting, file=sys.stderr, flush=True)
            if percent is not None and percent != shown[1]:
                print(f"progress: {percent}%", file=sys.stderr, flush=True)
            shown = (waiting or shown[0], percent if percent is not None else shown[1])


@contextlib.contextmanager
def _sigint_sets(event: threading.Event) -> Iterator[None]:
    """While inside, SIGINT sets *event* instead of raising (in the main thread; elsewhere,
    as in tests that call the CLI from a thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _task_data(task: str | None) -> str | bytes:
    """The data of a ``--function`` task: ``--task TEXT``, or standard input for ``--task -``
    and for no ``--task`` when data is piped in (never a terminal, which would wait)."""
    if task is not None and task != "-":
        return task
    if task is None and (sys.stdin is None or sys.stdin.isatty()):
        return ""
    data = sys.stdin.buffer.read(MAX_STDIN + 1) if sys.stdin is not None else b""
    if len(data) > MAX_STDIN:
        raise UsageError(f"standard input is over {MAX_STDIN} bytes, more than a task carries")
    return data


def _print_outcome(info: TaskInfo, as_json: bool, out: TextIO) -> int:
    if as_json:
        print(json.dumps(_info_json(info)), file=out)
    elif info.state == "Completed":
        text = _output_text(info)
        print(text, file=out, end="" if text.endswith("\n") else "\n")
    elif info.state == "Failed":
        print(f"error: task {info.id} failed: {info.error}", file=sys.stderr)
    elif info.state == "Cancelled":
        print(f"error: task {info.id} was cancelled", file=sys.stderr)
    return EXIT_OK if info.state == "Completed" else EXIT_FAILED


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    """Print what the coordinator knows of one task: its worker by name, and why it waits."""
    with _client(args) as client:
        info = client.status(find_task(client, args.task_id))
        names = {w.id: w.name for w in client.workers()} if info.worker else {}
    if args.json:
        print(json.dumps(_info_json(info)), file=out)
        return EXIT_OK
    lines = [
        ("task", str(info.id)),
        ("name", info.name),
        ("state", info.state + (f" ({info.progress}%)" if info.progress is not None else "")),
        ("priority", info.priority),
    ]
    if info.waiting:
        lines.append(("waiting", info.waiting.removeprefix("waiting: ")))
    if info.worker:
        name = names.get(info.worker)
        lines.append(("worker", f"{name} ({short(info.worker)})" if name else str(info.worker)))
    if info.error:
        lines.append(("error", info.error))
    if info.output is not None:
        lines.append(("output", shorten(_output_text(info))))
    for label, value in lines:
        print(f"{label + ':':<10}{value}", file=out)
    return EXIT_OK


def run_result(args: argparse.Namespace, out: TextIO) -> int:
    """Wait for one task's outcome and print it."""
    with _client(args) as client:
        info = client.wait(find_task(client, args.task_id))
    return _print_outcome(info, args.json, out)


def run_cancel(args: argparse.Namespace, out: TextIO) -> int:
    """Cancel one task."""
    with _client(args) as client:
        task_id = find_task(client, args.task_id)
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
    """Print the cluster's status: the leader, its term, the counts."""
    with _client(args) as client:
        status = client.cluster_status()
    fields = {
        "leader": str(status.leader_id),
        "address": status.address,
        "term": status.term,
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
    """Print the workers, with their slots, load and state."""
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
    table(
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
    """Print the newest tasks the coordinator remembers."""
    if args.limit > TASK_LIST_LIMIT:
        raise UsageError(f"--limit: at most {TASK_LIST_LIMIT} (one answer); page with --offset")
    with _client(args) as client:
        try:
            tasks = client.tasks(args.limit, state=args.state, offset=args.offset)
        except VistritError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps([_info_json(info) for info in tasks]), file=out)
        return EXIT_OK
    table(
        out,
        ["id", "state", "priority", "name"],
        [[short(t.id), t.state, t.priority, t.name] for t in tasks],
    )
    return EXIT_OK


def _output_text(info: TaskInfo) -> str:
    """A finished task's output as text: a Python call's value as ``repr`` (a ``str`` as
    itself), other output as UTF-8."""
    if isinstance(info.task.payload, TaskPayload.Call) and info.state == "Completed":
        try:
            value = info.value
        except (ProtocolError, ValueError) as exc:
            return f"(a value that cannot be read: {exc})"
        return value if isinstance(value, str) else repr(value)
    return (info.output or b"").decode("utf-8", "replace")


def _info_json(info: TaskInfo) -> dict[str, Any]:
    output: dict[str, Any] = {"output": None}
    if isinstance(info.task.payload, TaskPayload.Call) and info.state == "Completed":
        try:
            output = {"output": json.loads(json.dumps(info.value))}
        except (TypeError, ValueError, ProtocolError):  # bytes, keys JSON cannot hold, malformed
            output = {"output": None, "output_repr": _output_text(info)}
    elif info.output is not None:
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
        "waiting": info.waiting,
        **output,
    }


def find_task(client: VistritClient, text: str) -> uuid.UUID:
    """The task *text* names: its id, or a unique prefix of one (``1a2b3c4d``, as logs and
    tables print ids), looked up among the tasks the coordinator remembers."""
    with contextlib.suppress(ValueError):
        return uuid.UUID(text)
    prefix = prefix_of(text)
    if prefix is None:
        raise UsageError(f"not a task id: {text!r}")
    found: list[uuid.UUID] = []
    for offset in range(0, MAX_SEARCHED, TASK_LIST_LIMIT):
        try:
            page = client.tasks(TASK_LIST_LIMIT, offset=offset)
        except VistritError:  # a coordinator older than v4: its one page
            page = [] if offset else client.tasks(TASK_LIST_LIMIT)
        found += match_prefix(prefix, (info.id for info in page))
        if len(page) < TASK_LIST_LIMIT:
            break
    if not found:
        raise TaskNotFound(f"no task starts with {text}")
    if len(found) > 1:
        shown = ", ".join(str(task_id) for task_id in found[:5])
        raise UsageError(f"{text} is the start of {len(found)} task ids ({shown}); give more")
    return found[0]
