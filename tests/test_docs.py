"""The docs cannot rot: the commands and Python sessions they show are run here.

Each page's ``$ python -m vistrit ...`` lines run in order, as one session against a live
cluster, in real processes:

* ``coordinator``, ``worker`` and ``trace`` commands start in the background (their first
  line says they are ready) and are stopped when the page is done;
* every address of a port from 7878 to 7889 becomes 127.0.0.1 on a free port (one for
  each), so the tests never touch a real 7878 nor leave loopback;
* ``NAME=$(python -m vistrit ...)`` keeps the output for ``$NAME`` in later commands;
* the output a page shows under a command must appear in the command's output (lines
  with ``...`` are placeholders); a command whose shown output starts with ``error:``
  must fail with exit code 1 (or the code the page names), one whose output names an
  exit code must end with it, and any other must succeed.

The ``>>>`` sessions run as doctests.
"""

from __future__ import annotations

import contextlib
import doctest
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(
    [*DOCS.glob("*.rst"), *DOCS.glob("tutorials/*.rst")],
    key=lambda p: str(p),
)
PROMPT = re.compile(r"^\s+\$ (?:(\w+)=\$\()?(python3? -m vistrit [^#]*?)\)?\s*(?:#.*)?$")
BACKGROUND = {"coordinator", "worker", "trace"}
SMALL_BENCH = [
    "--seconds",
    "0.01",
    "--repeats",
    "1",
    "--tasks",
    "200",
    "--round-trips",
    "20",
    "--cpu-tasks",
    "4",
    "--payload-tasks",
    "2",
    "--payload-mib",
    "1",
]
EXIT_CODE = re.compile(r"exit code (\d)")
ADDRESS = re.compile(r"(?:0\.0\.0\.0|localhost|127\.0\.0\.1):(78[78]\d)")


@dataclass
class Step:
    command: str
    variable: str | None
    shown: list[str] = field(default_factory=list)


def steps_of(page: Path) -> list[Step]:
    steps: list[Step] = []
    in_console = False
    for line in page.read_text().splitlines():
        if line.strip().startswith(".. code-block::"):
            in_console = line.strip().endswith("console")
            continue
        if not in_console:
            continue
        match = PROMPT.match(line)
        if match:
            steps.append(Step(match.group(2).strip(), match.group(1)))
        elif steps and line.startswith("   ") and line.strip() and not line.strip().startswith("$"):
            steps[-1].shown.append(line.strip())
        elif line.strip() and not line.startswith(" "):
            in_console = False
    return steps


SESSIONS = [(page, steps) for page in PAGES if (steps := steps_of(page))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def background() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()


def test_every_console_page_is_found() -> None:
    names = {page.name for page, _ in SESSIONS}
    assert {"quickstart.rst", "reading-the-wire.rst", "first-cluster.rst"} <= names


@pytest.mark.parametrize(("page", "steps"), SESSIONS, ids=[p.name for p, _ in SESSIONS])
def test_page_commands_run_as_shown(page: Path, steps: list[Step], tmp_path: Path) -> None:
    ports = {"7878": free_port()}
    env = {**os.environ, "VISTRIT_COORDINATOR": f"127.0.0.1:{ports['7878']}"}
    variables: dict[str, str] = {}
    with background() as processes:
        for step in steps:
            text = ADDRESS.sub(
                lambda a: f"127.0.0.1:{ports.setdefault(a[1], free_port())}", step.command
            )
            for name, value in variables.items():
                text = text.replace(f"${name}", value)
            args = shlex.split(text)[3:]
            if args[0] == "bench":
                args += SMALL_BENCH  # the same code, in less time
            command = [sys.executable, "-m", "vistrit", *args]
            if args[0] in BACKGROUND:
                process = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    cwd=tmp_path,
                    env=env,
                )
                processes.append(process)
                assert process.stdout is not None
                ready = process.stdout.readline()
                assert ready.startswith("vistrit "), f"{page.name}: {text}: {ready!r}"
                continue
            run = subprocess.run(
                command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
            )
            printed = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
            failing = [line for line in step.shown if line.startswith("error:")]
            code = EXIT_CODE.search(" ".join(step.shown))
            expected = 0
            if failing or code:
                expected = int(code.group(1)) if code else 1
            assert run.returncode == expected, f"{page.name}: {text}\n{run.stdout}{run.stderr}"
            for line in step.shown:
                if "..." in line or "…" in line or EXIT_CODE.search(line):
                    continue
                assert line in printed, f"{page.name}: {text}: {line!r} not in {printed}"
            if step.variable:
                variables[step.variable] = run.stdout.strip()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_sessions_in_the_docs(page: Path) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


ROOT = DOCS.parent


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_each_page_says_python_one_way(page: Path) -> None:
    """A reader copying commands meets ``python3 -m vistrit`` or ``python -m vistrit`` on a
    page, never both."""
    forms = set(re.findall(r"\b(python3?) -m vistrit\b", page.read_text()))
    assert len(forms) <= 1, f"{page.name} mixes {sorted(forms)}"


def test_the_fault_tolerance_tutorial_leaves_time_to_kill_a_worker() -> None:
    """Its task must outlast a reader finding and killing its worker, and its sample log
    must show the version workers join with today."""
    from vistrit.protocol import NEWEST_VERSION

    text = (DOCS / "tutorials" / "fault-tolerance.rst").read_text()
    sleeps = [int(s) for s in re.findall(r"sleep (\d+);", text)]
    assert sleeps and min(sleeps) >= 15, sleeps
    versions = set(re.findall(r"joined from [\d.:]+ \(v(\d)\)", text))
    assert versions == {str(NEWEST_VERSION)}


def test_what_the_tutorials_leave_in_the_clone_is_ignored_by_git() -> None:
    """Tutorials write vistrit-data/, data-1/... and chaos-runs/; a clone stays clean."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to keep clean")
    paths = ["vistrit-data/journal.vst", "data-1/journal.vst", "data-3/term", "chaos-runs/a/x"]
    run = subprocess.run(
        ["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert run.stdout.split() == paths
