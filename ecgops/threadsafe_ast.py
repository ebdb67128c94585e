"""``ast.parse`` made safe to call from several threads on the CPython releases that need it.

CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 count the depth of the AST they build in one counter
shared by every thread (cpython gh-106905, fixed in 3.11.8 and 3.12.2). A garbage collection in
the middle of ``ast.parse`` may switch threads; a parse in the other thread then moves the
shared counter and one of the two fails with ``SystemError: AST constructor recursion depth
mismatch``. The pipeline trains models in threads, and their libraries parse source all the
time (``inspect.signature`` of builtins, pydantic, torch, numba, matplotlib, Great Expectations),
so a training failed at random. On those releases :func:`install` serialises ``ast.parse``
(``ast.literal_eval`` and ``inspect`` call it too) behind one re-entrant lock; elsewhere it does
nothing.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

FIXED_IN = {(3, 11): (3, 11, 8), (3, 12): (3, 12, 2)}
"""First fixed release per affected minor version; releases before 3.11 lack the counter."""

_LOCK = threading.RLock()  # re-entrant: a collection inside a parse may parse again


def affected(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    """True on a CPython release whose ``ast.parse`` is not thread-safe (see module doc)."""
    fixed = FIXED_IN.get(tuple(version[:2]))
    return fixed is not None and tuple(version[:3]) < fixed


def locked(parse: Callable[..., Any]) -> Callable[..., Any]:
    """``parse`` run under the module's lock, one thread at a time."""

    @functools.wraps(parse)
    def parse_locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return parse(*args, **kwargs)

    parse_locked.__ecgops_locked__ = True  # type: ignore[attr-defined]
    return parse_locked


def install() -> bool:
    """Serialise ``ast.parse`` where the running CPython needs it; idempotent.

    Returns:
        True when ``ast.parse`` is (now) the locked version.
    """
    if getattr(ast.parse, "__ecgops_locked__", False):
        return True
    if not affected():
        return False
    ast.parse = locked(ast.parse)
    return True
