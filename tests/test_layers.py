"""The architecture holds: each layer imports only from layers below it (DESIGN.md).

Read from the source with ``ast``, so a forbidden import fails here even if no test
happens to execute the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vistrit

PACKAGE = Path(vistrit.__file__).parent

# Lowest first. A module may import vistrit modules of its own layer or below.
LAYERS = {
    "vistrit.protocol": 0,  # sans-I/O core
    "vistrit.defaults": 0,  # the tunables: plain data
    "vistrit.logic": 1,  # pure logic: scheduling, task and election state machines
    "vistrit.transport": 2,  # all socket code
    "vistrit.leader": 2,  # how workers and clients find the leading coordinator
    "vistrit.coordinator": 3,
    "vistrit.worker": 3,
    "vistrit.client": 3,
    "vistrit.results": 3,  # what the client hands back
    "vistrit.tracer": 3,
    "vistrit.bench": 4,
    "vistrit.demo": 4,
    "vistrit.election_demo": 4,
    "vistrit.cli": 5,
    "vistrit.__main__": 5,
    "vistrit": 5,  # the package's own __init__
}
NODES = {"vistrit.coordinator", "vistrit.worker", "vistrit.client"}
# What the pure layers must never touch: I/O, threads, clocks, logging, processes.
IMPURE = {"socket", "ssl", "select", "selectors", "threading", "time", "logging", "subprocess",
          "asyncio", "os", "signal", "random"}  # fmt: skip
FORBIDDEN_EVERYWHERE = {"pickle", "marshal", "shelve", "asyncio"}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def layer_of(module: str) -> tuple[str, int]:
    best = max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len)
    return best, LAYERS[best]


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vistrit":  # from vistrit import defaults: the submodule
                names += [f"vistrit.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_respect_the_layers(module: str, path: Path) -> None:
    home, level = layer_of(module)
    for imported in imports_of(path):
        top = imported.split(".")[0]
        assert top not in FORBIDDEN_EVERYWHERE, f"{module} imports {imported}"
        if level <= 1:
            assert top not in IMPURE, f"{module} is pure but imports {imported}"
        if top != "vistrit":
            continue
        other, other_level = layer_of(imported)
        assert other_level <= level, f"{module} (layer {level}) imports {imported} ({other_level})"
        if home in NODES and other in NODES:
            assert other == home, f"{module} imports another node: {imported}"


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_print_eval_or_exec_outside_the_cli(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"eval", "exec", "compile"}, module
    if not (
        module == "vistrit.__main__" or module == "vistrit.cli" or module.startswith("vistrit.cli.")
    ):
        assert "print" not in calls, f"{module} prints; use logging"


def test_every_module_starts_with_a_docstring_saying_what_it_is_for() -> None:
    for module, path in modules():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and len(docstring) > 40, module
