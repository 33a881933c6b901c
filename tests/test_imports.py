"""The package's import graph: no cycle anywhere, and the layers point one way.

Every ``import`` and ``from ... import`` of every module is read from its source with ``ast``,
wherever it stands (module level, inside a function, under ``if TYPE_CHECKING``): a lazy
import inside a function that dodges a circle at import time is still a circle in the design.
``from package import name`` counts as an import of ``package.name`` when that is a module,
else of ``package``. Only what the source names is an edge: that Python runs a package's
``__init__`` before any of its modules is not (every package would be a circle), but a module
that imports a name from its own package's ``__init__`` does import it.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import archiver

PACKAGE = "archiver"
ROOT = Path(archiver.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the package -> its source file."""
    found = {PACKAGE: ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix=f"{PACKAGE}."):
        name = info.name
        relative = Path(*name.split(".")[1:])
        path = ROOT / relative / "__init__.py" if info.ispkg else ROOT / f"{relative}.py"
        if path.is_file():
            found[name] = path
    return found


MODULES = _modules()


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name ``from`` imports from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, node: ast.AST) -> list[str]:
    """The package modules one import statement imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    if not isinstance(node, ast.ImportFrom):
        return []
    source = _absolute(module, node)
    out = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in MODULES:
            out.append(sub)
        elif source in MODULES:
            out.append(source)
    return out


def _imports(module: str) -> set[str]:
    """Every ``archiver`` module ``module`` imports anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    out: set[str] = set()
    for node in ast.walk(tree):
        out.update(_targets(module, node))
    return out - {module}


def _external(module: str) -> set[str]:
    """Top-level names of the third-party packages ``module`` imports anywhere."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def _component_of(module: str) -> set[str]:
    """The modules that both reach ``module`` and are reached from it."""

    def reach(graph: dict[str, set[str]]) -> set[str]:
        seen, todo = {module}, [module]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reverse: dict[str, set[str]] = {}
    for m, targets in GRAPH.items():
        for t in targets:
            reverse.setdefault(t, set()).add(m)
    return reach(GRAPH) & reach(reverse)


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


# --------------------------------------------------------------------------- the checker itself


def test_the_walk_sees_every_kind_of_import():
    assert "archiver.cli.options" in MODULES
    assert "archiver.storage.db" in GRAPH["archiver.cli.db"]  # from archiver.storage.db import x
    assert "archiver.cli.options" in GRAPH["archiver.cli.db"]
    assert "archiver.errors" in GRAPH["archiver.config"]
    assert "archiver" in GRAPH["archiver.cli"]  # from archiver import __version__


def test_a_function_level_import_is_an_edge():
    tree = ast.parse("def f():\n    from archiver.cli import options\n")
    targets = [t for n in ast.walk(tree) for t in _targets("archiver.config", n)]
    assert targets == ["archiver.cli.options"]


def test_find_cycles_names_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


# --------------------------------------------------------------------------- the package


def test_no_import_cycle():
    cycles = [
        " -> ".join(c) + f"  (in a circle of {len(members)}: {', '.join(sorted(members))})"
        for c, members in ((c, _component_of(c[0])) for c in find_cycles(GRAPH))
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("layer", ["archiver.storage", "archiver.normalize"])
def test_storage_and_normalize_import_no_higher_layer(layer):
    higher = ("archiver.sync", "archiver.sentry", "archiver.operations", "archiver.cli")
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _in(m, layer)
        for t in targets
        if _in(t, *higher)
    )
    assert not bad, "\n".join(bad)


def test_only_the_entry_points_import_the_cli():
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if not _in(m, "archiver.cli") and m != "archiver.__main__"
        for t in targets
        if _in(t, "archiver.cli")
    )
    assert not bad, "\n".join(bad)


def test_no_click_outside_the_cli():
    bad = sorted(m for m in MODULES if not _in(m, "archiver.cli") and "click" in _external(m))
    assert not bad, "modules importing click outside archiver.cli: " + ", ".join(bad)


def test_import_archiver_cli_works():
    from archiver.cli import cli

    assert "sync" in cli.load_all()


def test_a_sync_does_not_import_the_other_commands():
    """The group imports a command's module when it is used: ``sync`` loads neither the
    scheduler nor the simulator (nor httpx's own command line, see ``archiver/__init__``)."""
    code = (
        "import sys; from archiver.cli import cli; import click; "
        "cli.get_command(click.Context(cli), 'sync'); "
        "print(sorted(m for m in ('apscheduler', 'archiver.simulator', 'http.server', "
        "'archiver.cli.demo', 'httpx._main', 'rich', 'pygments') if sys.modules.get(m)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_over_500_lines_but_the_simulators_data_tables():
    """One concept a module: a module past 500 lines holds two (data tables excepted)."""
    data_tables = {"archiver/simulator/templates.py"}
    long = sorted(
        f"{p.relative_to(ROOT.parent)}: {n} lines"
        for p in ROOT.rglob("*.py")
        if "_migrations" not in p.parts
        and str(p.relative_to(ROOT.parent)) not in data_tables
        and (n := len(p.read_text().splitlines())) > 500
    )
    assert long == []


def test_tests_share_fixtures_through_conftest_not_imports():
    """pytest loads conftest.py itself; importing it loads a second copy under another name."""
    tests = Path(__file__).resolve().parent
    bad = sorted(
        str(p.relative_to(tests))
        for p in tests.rglob("*.py")
        if any(
            line.startswith(
                ("from conftest import", "from tests.conftest import", "import conftest")
            )
            for line in p.read_text().splitlines()
        )
    )
    assert bad == []
