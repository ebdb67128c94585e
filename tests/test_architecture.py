"""The package's shape: no import cycle in ecgops/ + flows/, and ecgops never imports flows.

The import graph is read from the source (ast, every import statement, also the lazy ones
inside functions), so a cycle is caught even when no test happens to execute it.
"""

from __future__ import annotations

from ecgops.codegraph import closure, find_cycles, import_graph, project_modules


def test_the_graph_covers_both_packages_and_sees_lazy_imports() -> None:
    graph = import_graph()
    assert set(graph) == set(project_modules())
    assert {"ecgops.cli", "ecgops.stages", "flows.pipeline"} <= set(graph)
    assert "flows.ingest" in graph["flows.pipeline"]
    assert "ecgops.orchestration.runner" in graph["ecgops.cli"]  # imported inside a command
    assert "ecgops.config" in closure(["flows.pipeline"])


def test_no_import_cycle() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_ecgops_never_imports_flows() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "flows")
        for module, targets in graph.items()
        if module.split(".")[0] == "ecgops"
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_cycle_finder_names_each_circle_once() -> None:
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset(),
        "e": frozenset({"e"}),
        "f": frozenset({"d"}),
    }
    cycles = find_cycles(graph)
    assert sorted(cycles) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"x": frozenset({"y"}), "y": frozenset()}) == []
