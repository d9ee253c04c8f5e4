"""docs/migrating.rst's promise: the same script (docs/examples/areas.py) prints the same
on every backend, changing only the URL: a Vistrit cluster in real processes,
``local://`` and, where Dask is installed, a Dask scheduler on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from spawn import Processes, dask_cluster, free_port, stop_all

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.fixture
def vistrit_url(tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES)}
    group = Processes(tmp_path, env)
    try:
        group.start("coordinator", "--bind", address)
        group.start("worker", "--coordinator", address, "--tasks", "shapes")
        yield f"vistrit://{address}"
    finally:
        stop_all(group)


def run_script(url: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "areas.py", url],
        cwd=EXAMPLES,
        env={**os.environ, "PYTHONPATH": str(EXAMPLES)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.splitlines())  # as_completed's order is the finishing order


def test_the_same_script_prints_the_same_on_every_backend(vistrit_url: str) -> None:
    expected = sorted(
        [
            "13.5",
            "[4, 10, 18]",
            "{'min': 0, 'max': 2, 'mean': 1.0}",
            "{'min': 1, 'max': 3, 'mean': 2.0}",
            "{'min': 2, 'max': 4, 'mean': 3.0}",
            "failed as expected: ValueError",
        ]
    )
    assert run_script(vistrit_url) == expected
    assert run_script("local://2") == expected
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("Dask is not installed here: dask:// not tried")
    pytest.importorskip("distributed")
    with dask_cluster() as (_, url):
        sys.path.insert(0, str(EXAMPLES))  # its worker runs in this process
        try:
            assert run_script(url) == expected
        finally:
            sys.path.remove(str(EXAMPLES))
