"""Running one task's payload: what each ``TaskPayload`` kind means on a worker.

* ``Data{function, data}`` - the named function on the data.
* ``Map{function, input_chunks}`` - the function on each chunk; the outputs joined with
  newlines (as the reference worker does). Progress is reported chunk by chunk.
* ``Reduce{function, intermediate_results}`` - a reduce function over the inputs.
* ``Compute{expression}`` - the safe arithmetic evaluator, never ``eval``.
* ``Call{function, arguments}`` (v4) - a Python function of a module the worker was
  started with (``--tasks``), called with typed arguments (:mod:`vistrit.worker.calls`).
* ``Command{command, args}`` - a program, run **without a shell**, only on a worker
  started with ``--allow-commands PROG[,PROG...]`` naming it (as the task names it: ``sh``
  allows ``sh``, not ``/bin/sh``; a shell runs only where one was named). With no
  ``args``, ``command`` is split like a shell would split words (``"echo hello"`` runs
  ``echo`` with ``hello``), but no shell ever sees it: no pipes, globs or variables. Its
  stdout, stderr and exit code are captured; it is killed if the task is cancelled or runs
  past ``timeout_seconds``.

Read next: :mod:`vistrit.worker.node`.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass

from vistrit.protocol.types import Command, Map, Task, TaskPayload
from vistrit.worker.arithmetic import ArithmeticError_, evaluate, format_number
from vistrit.worker.calls import run_call
from vistrit.worker.functions import FunctionRegistry, TaskCancelled, TaskContext, TaskFailed

#: How often a running command is checked for cancellation.
COMMAND_POLL = 0.05


@dataclass
class Outcome:
    """What a task produced: output, or an error, plus a command's captured streams."""

    success: bool
    data: bytes | None = None
    error: str | None = None
    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


def run_task(
    task: Task,
    ctx: TaskContext,
    functions: FunctionRegistry,
    *,
    allow_commands: Collection[str] = frozenset(),
    modules: Collection[str] = frozenset(),
) -> Outcome:
    """Run *task*; a failure of the task itself is an Outcome, never an exception."""
    payload = task.payload
    try:
        if isinstance(payload, TaskPayload.Call):
            success, data, error, trace = run_call(
                payload.function, payload.arguments, ctx, modules
            )
            return Outcome(success, data=data, error=error, stderr=trace)
        if isinstance(payload, TaskPayload.Data):
            return Outcome(True, functions.call(payload.function, payload.data, ctx))
        if isinstance(payload, TaskPayload.Map):
            return Outcome(True, _map(payload, ctx, functions))
        if isinstance(payload, TaskPayload.Reduce):
            return Outcome(
                True, functions.call_reduce(payload.function, list(payload.intermediate_results))
            )
        if isinstance(payload, TaskPayload.Compute):
            try:
                value = evaluate(payload.expression)
            except ArithmeticError_ as exc:
                raise TaskFailed(
                    f"Cannot evaluate expression: {payload.expression} ({exc})"
                ) from None
            return Outcome(True, format_number(value).encode())
        if isinstance(payload, TaskPayload.Command):
            argv = _argv(payload)
            if not allow_commands:
                raise TaskFailed(
                    "this worker does not run commands (start it with --allow-commands PROG)"
                )
            if argv[0] not in allow_commands:
                allowed = ", ".join(sorted(allow_commands))
                raise TaskFailed(f"this worker does not run {argv[0]!r} (it runs: {allowed})")
            return _command(argv, task.timeout_seconds, ctx)
        raise TaskFailed(f"unknown payload kind {type(payload).__name__}")
    except TaskCancelled:
        return Outcome(False, error="cancelled")
    except TaskFailed as exc:
        return Outcome(False, error=str(exc))


def _map(payload: Map, ctx: TaskContext, functions: FunctionRegistry) -> bytes:
    outputs = []
    total = len(payload.input_chunks)
    for index, chunk in enumerate(payload.input_chunks):
        if ctx.cancelled:
            raise TaskCancelled()
        outputs.append(functions.call(payload.function, chunk, ctx))
        ctx.progress((index + 1) * 100 // total)
    return b"\n".join(outputs)


def _argv(payload: Command) -> list[str]:
    """The program and its arguments (with no ``args``, the command split like a shell
    would, without running one)."""
    try:
        argv = [payload.command, *payload.args] if payload.args else shlex.split(payload.command)
    except ValueError as exc:
        raise TaskFailed(f"cannot split the command: {exc}") from None
    if not argv or not argv[0]:
        raise TaskFailed("empty command")
    return argv


def _command(argv: list[str], timeout: int, ctx: TaskContext) -> Outcome:
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise TaskFailed(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_POLL)
            break
        except subprocess.TimeoutExpired:
            late = deadline is not None and time.monotonic() > deadline
            if ctx.cancelled or late:
                process.kill()
                process.communicate()
                if late:
                    raise TaskFailed(
                        f"timed out after {timeout} s; the command was killed"
                    ) from None
                raise TaskCancelled() from None
    out, err = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    code = process.returncode
    if code != 0:
        detail = err.strip().splitlines()[-1] if err.strip() else "no output on stderr"
        return Outcome(
            False,
            data=stdout,
            error=f"exit code {code}: {detail}",
            exit_code=code,
            stdout=out,
            stderr=err,
        )
    return Outcome(True, data=stdout, exit_code=0, stdout=out, stderr=err)
