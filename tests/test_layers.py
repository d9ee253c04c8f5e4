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
    "vistrit.addresses": 0,  # addresses as text: plain string handling
    "vistrit.logic": 1,  # pure logic: scheduling, task and election state machines
    "vistrit.transport": 2,  # all socket code
    "vistrit.leader": 2,  # how workers and clients find the leading coordinator
    "vistrit.timers": 2,  # the repeating timer behind every heartbeat and tick
    "vistrit.session": 2,  # a worker's or client's session: join, heartbeat, reconnect
    "vistrit.replies": 2,  # pipelining: answers matched to the requests waiting for them
    "vistrit.submission": 3,  # what a client submits
    "vistrit.credentials": 2,  # the token file
    "vistrit.coordinator": 3,
    "vistrit.worker": 3,
    "vistrit.client": 3,
    "vistrit.results": 3,  # what the client hands back
    "vistrit.taskbook": 3,  # the client's unfinished tasks
    "vistrit.tracer": 3,
    "vistrit.bench": 4,
    "vistrit.dashboard": 4,  # the coordinator's state in a browser
    "vistrit.executors": 4,  # concurrent.futures on a cluster (and on other backends)
    "vistrit.demo": 4,
    "vistrit.election_demo": 4,
    "vistrit.chaos": 4,  # the lab: a real cluster broken on purpose, checked, drawn
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


# -- the shape of the code --------------------------------------------------------------------

#: The most lines a module may have: a reader should hold one in mind.
MAX_MODULE_LINES = 500


def all_imports_of(path: Path) -> set[str]:
    """Every vistrit module *path* imports, those under ``if TYPE_CHECKING:`` included."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    known = {name for name, _ in modules()}
    return {name for name in names if name in known}


def test_no_import_cycles_not_even_for_type_checking() -> None:
    graph = {name: all_imports_of(path) - {name} for name, path in modules()}
    # A package's __init__ re-exports its modules: importing it is importing them.
    for name in graph:
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_module_is_too_long_to_read(module: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"


def public_definitions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Public classes and functions, and the public methods of public classes."""
    found: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            found.append((node.name, node))
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                        found.append((f"{node.name}.{item.name}", item))
    return found


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for module, path in modules():
        tree = ast.parse(path.read_text(), str(path))
        for name, node in public_definitions(tree):
            assert isinstance(node, (ast.FunctionDef, ast.ClassDef))
            if not ast.get_docstring(node):
                missing.append(f"{module}.{name}")
    assert not missing, f"{len(missing)} public names without a docstring: {missing}"
