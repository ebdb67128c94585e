"""The import graph of the project's own modules, read from the source (ast, nothing executed).

A stage's code dependencies are the import closure of its entry modules: every ``import`` counts,
also those inside functions (the lazy imports that keep the CLI fast are still code the stage
runs). The stage table (:mod:`ecgops.stages`) turns a closure into the paths of ``dvc.yaml``
and the Prefect cache keys; the architecture test uses the same graph to forbid import cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
PACKAGES = ("ecgops", "flows")


def module_name(path: Path, root: Path = PROJECT_DIR) -> str:
    """Dotted module name of a source file (``ecgops/data/__init__.py`` -> ``ecgops.data``).

    Args:
        path: a ``.py`` file under ``root``.
        root: the project root.

    Returns:
        The dotted name.
    """
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=4)
def project_modules(root: Path = PROJECT_DIR) -> dict[str, Path]:
    """Every module of the project's packages present under ``root``: dotted name -> file."""
    return {
        module_name(p, root): p
        for package in PACKAGES
        if (root / package).is_dir()
        for p in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (a module, or the package it names)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Dotted names a module imports (``from X import y`` yields ``X`` and ``X.y``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


@lru_cache(maxsize=4)
def import_graph(root: Path = PROJECT_DIR) -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports (itself and its parent packages excluded).

    Args:
        root: the project root.

    Returns:
        One entry per module of ``ecgops`` and ``flows``.
    """
    modules = project_modules(root)
    graph: dict[str, frozenset[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {
            _resolve(n, modules) for n in _imported_names(tree, name, path.name == "__init__.py")
        }
        parents = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
        graph[name] = frozenset(t for t in targets if t and t not in parents)
    return graph


def find_cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The import cycles of a graph: one ``[a, b, ..., a]`` per group of modules in a circle.

    Args:
        graph: module -> imported modules.

    Returns:
        One cycle per strongly connected group (empty: no cycle).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while (member := stack.pop()) != node:
                group.add(member)
            groups.append(group | {node})

    for start in sorted(graph):
        if start not in index:
            connect(start)
    return [
        _cycle_in(sorted(g)[0], g, graph)
        for g in groups
        if len(g) > 1 or next(iter(g)) in graph.get(next(iter(g)), ())
    ]


def _cycle_in(start: str, group: set[str], graph: dict[str, frozenset[str]]) -> list[str]:
    """A shortest path from ``start`` back to itself inside one strongly connected group."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
                if nxt in group and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]


def closure(modules: Iterable[str], root: Path = PROJECT_DIR) -> frozenset[str]:
    """Every project module that ``modules`` import, directly or not (themselves included).

    Args:
        modules: dotted names of entry modules.
        root: the project root.

    Returns:
        The set of dotted module names.

    Raises:
        ValueError: an entry module does not exist.
    """
    graph = import_graph(root)
    seen: set[str] = set()
    todo = list(modules)
    for name in todo:
        if name not in graph:
            raise ValueError(f"{name}: no such module under {root}")
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return frozenset(seen)


def _trivial(path: Path) -> bool:
    """A package ``__init__.py`` that holds only a docstring (it cannot change behaviour)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def code_paths(modules: Iterable[str], root: Path = PROJECT_DIR) -> tuple[str, ...]:
    """The source paths of a set of modules, a whole folder where every module of it is in.

    Args:
        modules: dotted module names (e.g. an import :func:`closure`).
        root: the project root.

    Returns:
        Sorted paths relative to ``root`` (``ecgops/data/build.py``, ``ecgops/models/nets``).
        Docstring-only ``__init__.py`` files never stand alone; they count as present.
    """
    known = project_modules(root)
    files = {known[m] for m in modules}
    free = {p for p in known.values() if p.name == "__init__.py" and _trivial(p)}
    covered = files | free
    chosen: set[Path] = set()
    for path in files - free:
        best, folder = path, path.parent
        while folder.parent != root and _all_in(folder, covered):
            best, folder = folder, folder.parent
        chosen.add(best)
    chosen = {p for p in chosen if not any(q in p.parents for q in chosen)}
    return tuple(sorted(p.relative_to(root).as_posix() for p in chosen))


def _all_in(folder: Path, files: set[Path]) -> bool:
    """Whether every module under a folder is in ``files``."""
    return all(p in files for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
