"""No import cycles in `mr3_reward` and `training`: two modules that import each other are one idea split badly.

The graph is read from the source with `ast`, not from what Python happens to import, so it sees what a
reader sees:

* every ``import`` and ``from ... import`` of a module counts, wherever it stands: inside a function (a lazy
  import still ties the two modules together for whoever reads them) and under ``if TYPE_CHECKING:`` (an
  annotation that names a type of the importer couples the two just as much; move the type down a floor or
  declare the few attributes used in a `typing.Protocol`);
* relative imports are resolved against the importing module's package;
* ``from pkg import name`` is an edge to ``pkg`` (its ``__init__`` runs, and the reader looks there for
  ``name``), and also to ``pkg.name`` when that is a module;
* ``import a.b.c`` and ``from a.b.c import x`` are edges to ``a.b.c`` only. Python also runs the parents'
  ``__init__`` first, but counting that would put every package whose ``__init__`` re-exports its parts in
  one cycle with all of them; the reader's dependency is on the module named.

A cycle is a strongly connected component of two or more modules (or a module importing itself), so a
loop through three modules is found as surely as a pair.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("mr3_reward", "training")

Graph = Mapping[str, Mapping[str, list[int]]]  # module -> imported module -> line numbers of those imports


def module_files(repo: Path, roots: Iterable[str]) -> dict[str, Path]:
    """Every module under ``roots`` by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for root in roots:
        for path in sorted((repo / root).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _package_of(name: str, path: Path) -> str:
    """The package a module's relative imports start from: itself for a package, else its parent."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _targets(node: ast.AST, name: str, path: Path, modules: Mapping[str, Path]) -> list[str]:
    """The known modules one import statement names, by the rules in this file's docstring."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = _package_of(name, path).split(".")
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = [source] if source in modules else []
    found += [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, dict[str, list[int]]]:
    """Who imports whom among ``modules``, with the line of each import."""
    graph: dict[str, dict[str, list[int]]] = {}
    for name, path in modules.items():
        edges: dict[str, list[int]] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for target in _targets(node, name, path, modules):
                edges.setdefault(target, []).append(node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components that are cycles (Tarjan's algorithm), each sorted, in name order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(component: list[str], graph: Graph, modules: Mapping[str, Path]) -> str:
    """One cycle and the imports that make it, each with its file and line."""
    members = set(component)
    lines = [" <-> ".join(component)]
    for source in component:
        where = modules[source].relative_to(REPO) if source in modules else source
        for target, numbers in sorted(graph[source].items()):
            if target in members:
                lines.append(f"    {where}:{','.join(map(str, numbers))} imports {target}")
    return "\n".join(lines)


def test_mr3_reward_and_training_have_no_import_cycles():
    modules = module_files(REPO, ROOTS)
    graph = import_graph(modules)
    found = cycles(graph)
    assert not found, f"{len(found)} import cycle(s); move the shared part down a floor or pass a function in:\n" + (
        "\n".join(describe(component, graph, modules) for component in found))


def test_the_cycle_check_finds_a_loop_through_three_modules_and_a_pair():
    graph = {"a": {"b": [1]}, "b": {"c": [1]}, "c": {"a": [1], "d": [2]}, "d": {}, "e": {"f": [1]}, "f": {"e": [3]},
             "g": {"g": [1]}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"], ["g"]]
    assert cycles({"a": {"b": [1]}, "b": {}}) == []


def test_the_graph_sees_lazy_relative_and_type_checking_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.sub import leaf\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("def f():\n    from .. import top\n")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.leaf import f\nimport os\n")
    modules = module_files(tmp_path, ["pkg"])
    graph = import_graph(modules)
    assert graph["pkg"] == {"pkg.sub": [1], "pkg.sub.leaf": [1]}  # `from pkg import name`: the package and the module
    assert graph["pkg.sub.leaf"] == {"pkg": [2], "pkg.top": [2]}  # inside a function, relative
    assert graph["pkg.top"] == {"pkg.sub.leaf": [3]}  # under TYPE_CHECKING; os is not ours
    assert cycles(graph) == [["pkg", "pkg.sub.leaf", "pkg.top"]]
