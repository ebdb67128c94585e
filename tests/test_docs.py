"""docs/architecture.md names the tree as it is: every module it names exists, and every module
of the package and the flows is named (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
MODULE = re.compile(r"`((?:ecgops|flows)/[\w/]+\.py)`")


def named_modules() -> set[str]:
    """The module paths the architecture doc names (in backticks)."""
    return set(MODULE.findall(DOC.read_text()))


def tree_modules() -> set[str]:
    """Every module of ``ecgops/`` and ``flows/`` (package ``__init__`` files excepted)."""
    files = [*ROOT.joinpath("ecgops").rglob("*.py"), *ROOT.joinpath("flows").glob("*.py")]
    return {str(p.relative_to(ROOT)) for p in files if p.name != "__init__.py"}


def test_every_module_the_doc_names_exists() -> None:
    missing = sorted(m for m in named_modules() if not (ROOT / m).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_of_the_tree_is_named() -> None:
    unnamed = sorted(tree_modules() - named_modules())
    assert not unnamed, f"docs/architecture.md does not name: {unnamed}"


def test_the_doc_names_many_modules() -> None:
    """The regex reads the doc's module table (guards against a format change hiding all)."""
    assert len(named_modules()) >= len(tree_modules()) * 0.9
