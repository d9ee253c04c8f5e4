"""The command line: ``python -m vistrit COMMAND`` (also installed as ``vistrit``).

This package is the only place that parses arguments, configures logging or prints;
everything it shows comes from the layers below: :mod:`~vistrit.cli.nodes`,
:mod:`~vistrit.cli.tasks` and :mod:`~vistrit.cli.tools` each add their commands to the one
parser built here. Errors are one line on stderr, never a traceback.

Exit codes: 0 success; 1 the work failed (a failed or cancelled task, a refused request,
a bad frame); 2 bad usage; 3 no such task; 4 no coordinator reachable; 130 interrupted.

Commands: ``coordinator``, ``worker`` (nodes); ``submit``, ``status``, ``result``,
``cancel``, ``cluster``, ``workers``, ``tasks`` (a client, built on
:class:`~vistrit.client.VistritClient`); ``trace`` (the wire tracer); ``decode``,
``bench``, ``demo``; ``chaos`` and ``check`` (the lab, :mod:`~vistrit.cli.chaos`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from vistrit import __version__
from vistrit.cli import chaos, nodes, tasks, tools
from vistrit.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UsageError,
)
from vistrit.cli.tools import parse_hex
from vistrit.client import CoordinatorUnavailable, TaskNotFound, TaskRejected
from vistrit.credentials import CredentialsError

__all__ = ["UsageError", "build_parser", "main", "parse_hex"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per job, each with its options and help."""
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
    nodes.add_commands(commands)
    tasks.add_commands(commands)
    tools.add_commands(commands)
    chaos.add_commands(commands)
    return parser


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
    except CredentialsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
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
