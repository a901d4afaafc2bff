"""The package structure ARCHITECTURE.md draws, kept so: no import cycle between Parley's
modules (imports inside functions count: a lazy import hides a cycle, it does not remove it),
the lower packages import nothing above them, and no production module grows past 400 lines."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "contract", "database", "infra", "realtime", "web", "ops", "broker", "chat", "accounts",
    "analytics", "config",
)  # fmt: skip
# What a package may import of Parley's own (None: anything). The bottom of the map first.
MAY_IMPORT: dict[str, set[str] | None] = {
    "contract": set(),
    "database": set(),
    "infra": {"contract"},
    "realtime": {"contract", "infra", "ops", "accounts"},  # accounts: who the socket is
    "web": {"contract", "infra", "chat"},  # chat: the refusal codes and limits it answers with
    "broker": {"contract", "database", "infra", "ops"},
}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Parley modules ``name`` imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: -node.level + (path.name == "__init__.py") or None]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_lower_packages_import_nothing_above_them(graph, package):
    allowed = MAY_IMPORT[package] | {package}
    wrong = defaultdict(set)
    for module, imported in graph.items():
        if module.split(".")[0] == package:
            for target in imported:
                if target.split(".")[0] not in allowed:
                    wrong[module].add(target)
    assert dict(wrong) == {}


def test_no_production_module_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules().values()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_opens_with_what_it_owns():
    """A module's (and a package's) opening docstring says what it owns."""
    silent = [
        str(path.relative_to(ROOT))
        for path in _modules().values()
        if ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert silent == []
