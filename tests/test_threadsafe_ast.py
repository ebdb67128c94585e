"""ecgops.threadsafe_ast: parsing source from many threads at once never fails."""

from __future__ import annotations

import ast
import difflib
import gc
import random
import threading
from pathlib import Path

import pytest

import ecgops  # noqa: F401 - importing the package installs the lock
from ecgops import threadsafe_ast


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ((3, 10, 13), False),
        ((3, 11, 0), True),
        ((3, 11, 7), True),
        ((3, 11, 8), False),
        ((3, 12, 1), True),
        ((3, 12, 2), False),
        ((3, 13, 0), False),
    ],
)
def test_only_the_releases_with_the_shared_depth_counter_are_affected(version, expected) -> None:
    assert threadsafe_ast.affected(version) is expected


def test_importing_ecgops_locks_ast_parse_where_needed_and_only_once() -> None:
    locked = getattr(ast.parse, "__ecgops_locked__", False)
    assert locked is threadsafe_ast.affected()
    before = ast.parse
    threadsafe_ast.install()
    assert ast.parse is before  # idempotent: never wrapped twice


def test_parses_in_many_threads_during_collections_all_succeed() -> None:
    """The cpython gh-106905 reproducer: a gc callback runs Python code (a thread switch)
    while other threads parse; on an affected release without the lock some parses fail."""

    def busy_collection(phase: str, info: dict) -> None:
        lines = [f"{random.randint(0, 9)}\n" for _ in range(50)]
        list(difflib.unified_diff(lines, lines[::-1]))

    source = Path(ast.__file__).read_text()
    errors: list[BaseException] = []

    def parse_repeatedly() -> None:
        try:
            for _ in range(10):
                ast.parse(source)
                ast.literal_eval("{'a': [1, 2.5, None]}")
        except SystemError as exc:
            errors.append(exc)

    gc.callbacks.append(busy_collection)
    try:
        threads = [threading.Thread(target=parse_repeatedly) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.callbacks.remove(busy_collection)
    assert errors == []
