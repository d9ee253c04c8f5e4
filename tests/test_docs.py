"""The docs cannot rot: the commands and Python sessions they show are run here.

Every ``$ python3 -m vistrit ...`` line in the tutorials and the quick start is run in a
real process; it must succeed, unless the block shows an ``error:`` line after it, in
which case it must fail with exit code 1. Commands of subcommands that do not exist yet
(the quick start's "where this is going") are skipped by name, and listed by a test so the
list cannot silently grow. The ``>>>`` sessions run as doctests.
"""

from __future__ import annotations

import doctest
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vistrit.cli import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = [*sorted(DOCS.glob("tutorials/*.rst")), DOCS / "quickstart.rst", DOCS / "testing.rst"]
PROMPT = re.compile(r"^\s+\$ (python3? -m vistrit .*?)(?:\s+#.*)?$")


def known_commands() -> set[str]:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    return set(subparsers.choices)  # type: ignore[arg-type]


def shown_commands() -> list[tuple[str, str, bool]]:
    """(page, command, expects failure) for every vistrit command the docs show."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for index, line in enumerate(lines):
            match = PROMPT.match(line)
            if not match:
                continue
            following = []
            for after in lines[index + 1 :]:
                if not after.startswith("   ") or PROMPT.match(after):
                    break
                following.append(after)
            fails = any(text.strip().startswith("error:") for text in following)
            found.append((page.name, match.group(1), fails))
    return found


COMMANDS = shown_commands()
RUNNABLE = [c for c in COMMANDS if shlex.split(c[1])[3] in known_commands()]


def test_docs_show_commands_and_only_the_quick_start_target_is_not_built_yet() -> None:
    assert len(RUNNABLE) >= 5
    pending = {shlex.split(c[1])[3] for c in COMMANDS if c not in RUNNABLE}
    assert pending <= {"coordinator", "worker", "submit"}


@pytest.mark.parametrize(("page", "command", "fails"), RUNNABLE, ids=[c[1][:60] for c in RUNNABLE])
def test_shown_command_runs(page: str, command: str, fails: bool, tmp_path: Path) -> None:
    args = shlex.split(command)[3:]
    if args[:1] == ["bench"]:
        args += ["--seconds", "0.01", "--repeats", "1"]  # the same code, in less time
    run = subprocess.run(
        [sys.executable, "-m", "vistrit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == (1 if fails else 0), f"{page}: {command}\n{run.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_sessions_in_the_docs(page: str) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
