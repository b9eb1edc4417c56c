"""skmll's import graph, read from the source: floors run downward, and no module imports
itself back through others.

Every import counts, those inside functions too (a deferred import is still a dependency).
Entry points (``__main__.py``) sit above everything and are left out.
"""

import ast
from pathlib import Path

import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

import skmll

PACKAGE = Path(skmll.__file__).parent

# Each unit (a subpackage, or a module of the package's top level) imports only units of the
# floors below its own.
FLOORS = [
    {"utils", "_version"},
    {"hub"},
    {"semantic_graph", "datasets"},
    {"labelling"},
    {"selection"},
    {"reuse", "zoo"},
    {"_classifier", "metrics"},
    {"baselines"},
    {"paper"},
    {"cli"},
    {"exceptions", "skmll"},
]
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package=PACKAGE):
    """``{module: set of skmll modules it imports}``, read with ``ast``, entry points out.

    ``from .x import name`` counts as importing ``x.name`` when that is a module, else ``x``.
    """
    paths = {_module_name(p): p for p in package.rglob("*.py") if p.name != "__main__.py"}
    graph = {}
    for module, path in paths.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                            for alias in node.names}
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def _unit(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def circles(graph):
    """The groups of modules that import each other round a circle (sorted lists)."""
    names = sorted(graph)
    index = {name: i for i, name in enumerate(names)}
    rows, cols = zip(*[(index[a], index[b]) for a in names for b in graph[a]])
    adjacency = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    _, component = connected_components(adjacency, directed=True, connection="strong")
    groups = {}
    for name, c in zip(names, component):
        groups.setdefault(c, []).append(name)
    return [group for group in groups.values() if len(group) > 1]


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks find what they look for, on a graph made to hold both."""
    graph = {"skmll.hub._a": {"skmll.hub._b"}, "skmll.hub._b": {"skmll.hub._a"},
             "skmll.utils._c": {"skmll.reuse._d"}, "skmll.reuse._d": set()}
    assert circles(graph) == [["skmll.hub._a", "skmll.hub._b"]]
    assert _upward(graph) == ["skmll.utils._c -> skmll.reuse._d"]


def _upward(graph):
    return [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a])
            if _unit(a) != _unit(b) and FLOOR[_unit(b)] >= FLOOR[_unit(a)]]


def test_every_unit_has_a_floor():
    assert {_unit(m) for m in import_graph()} <= set(FLOOR)


def test_no_import_runs_upward_or_sideways():
    assert _upward(import_graph()) == []


@pytest.mark.parametrize("unit", sorted(p.name for p in PACKAGE.iterdir()
                                         if (p / "__init__.py").is_file()))
def test_no_circle_of_imports(unit):
    assert [group for group in circles(import_graph()) if _unit(group[0]) == unit] == []
