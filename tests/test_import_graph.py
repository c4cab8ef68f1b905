"""Imports point one way: no import circle among the dashboards' modules or among the
ingest jobs, lazy imports inside functions included (a circle that only closes at run
time is still a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def graph(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    names = {module_name(p): p for p in files}
    nodes = {n.removesuffix(".__init__"): p for n, p in names.items()}
    return {n: {m for m in imports_of(p) if m in nodes and m != n} for n, p in nodes.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``a -> b -> ... -> a``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_finds_lazy_and_direct_circles(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    src = tmp_path / "m.py"
    src.write_text("import x\n\ndef f():\n    from y.z import w\n")
    assert imports_of(src) == {"x", "y.z", "y.z.w"}


@pytest.mark.parametrize("package", ["dashboards", "ingest"])
def test_no_import_circle(package: str) -> None:
    edges = graph(package)
    assert len(edges) > 3
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])
