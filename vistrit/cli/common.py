"""What the command line's modules share: exit codes, the usage error, argument types.

Read next: :mod:`vistrit.cli.nodes`.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import threading
from pathlib import Path
from typing import TextIO

from vistrit import defaults
from vistrit.addresses import parse_address
from vistrit.credentials import Credentials
from vistrit.transport.tls import TLSConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad input on the command line: shown in one line, exit code 2."""


def add_coordinator_option(command: argparse.ArgumentParser) -> None:
    """Add ``--coordinator HOST:PORT[,...]`` (and ``--token-file``) to a subcommand."""
    command.add_argument(
        "--coordinator",
        default=os.environ.get("VISTRIT_COORDINATOR", defaults.COORDINATOR),
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"the coordinator(s) (default: $VISTRIT_COORDINATOR or {defaults.COORDINATOR})",
    )
    add_token_option(command)


def add_token_option(command: argparse.ArgumentParser) -> None:
    """Add ``--token-file PATH`` (the node's credentials) and the TLS options."""
    command.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="the cluster's credentials (default: $VISTRIT_TOKEN_FILE or ~/.vistrit/token; "
        "see the security page)",
    )
    add_tls_options(command)


def add_tls_options(command: argparse.ArgumentParser) -> None:
    """Add ``--tls-cert``, ``--tls-key`` and ``--tls-ca``."""
    tls = command.add_argument_group("TLS", "Give all three, on every node, for mutual TLS.")
    tls.add_argument("--tls-cert", type=Path, metavar="PATH", help="this node's certificate")
    tls.add_argument("--tls-key", type=Path, metavar="PATH", help="its private key")
    tls.add_argument("--tls-ca", type=Path, metavar="PATH", help="the CA that signs them all")


def tls_of(args: argparse.Namespace) -> TLSConfig | None:
    """The TLS options, all three or none (a usage error otherwise)."""
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None
    if not all(given):
        raise UsageError("--tls-cert, --tls-key and --tls-ca go together: give all three")
    config = TLSConfig(args.tls_cert, args.tls_key, args.tls_ca)
    try:
        config.context(server_side=False)  # the files are read now, not at the first use
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot use the TLS files: {exc}") from None
    return config


def credentials_of(args: argparse.Namespace, create: bool = False) -> Credentials | None:
    """The credentials ``--token-file`` names (created there if *create*, as a coordinator
    does), or None: the node reads the default file itself."""
    if args.token_file is None:
        return None
    if create:
        return Credentials.load_or_create(args.token_file)
    return Credentials.load(args.token_file)


def positive_float(text: str) -> float:
    """An argparse type: a number greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number greater than zero."""
    value = non_negative_int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number, zero or more."""
    value = positive_float(text) if text.strip() not in ("0", "0.0") else 0.0
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative: {text}")
    return value


def address(text: str) -> tuple[str, int]:
    """An argparse type: ``HOST:PORT`` as ``(host, port)``."""
    try:
        return parse_address(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


#: How often a node's main thread wakes while it waits to be stopped (see wait_for).
SIGNAL_POLL = 0.25


def node_process() -> None:
    """Tune this process for a long-running node (a coordinator or a worker): objects
    made so far (modules, classes, the CLI) are frozen out of the collector's view, and
    the youngest generation is collected less often
    (:data:`~vistrit.defaults.NODE_GC_THRESHOLD`)."""
    gc.freeze()
    gc.set_threshold(defaults.NODE_GC_THRESHOLD, *gc.get_threshold()[1:])


def until_signalled() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so nodes stop cleanly (wait on it with
    :func:`wait_for`)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def wait_for(stop: threading.Event) -> None:
    """Wait until *stop* is set, waking every :data:`SIGNAL_POLL` seconds. Python runs a
    signal's handler in the main thread, when that thread next runs Python code; when the
    kernel hands the signal to another thread (any thread may take it), a main thread
    asleep in a wait with no timeout is not woken, and would never run the handler that
    sets *stop*: a node would ignore SIGTERM. (Seen in the chaos lab: in 5 of 12 runs that
    killed nodes, a node did not stop on SIGTERM at the end.)"""
    while not stop.wait(SIGNAL_POLL):
        pass


def table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    """Rows as an aligned text table, with a header."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out
        )


def shorten(text: str, limit: int = 200) -> str:
    """A text cut to *width* characters, with an ellipsis if it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason(exc: BaseException) -> str:
    """An exception as one line for the user: its message, without a traceback."""
    return getattr(exc, "strerror", None) or str(exc)
