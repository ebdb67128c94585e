"""A thread-safe, in-process memo of pure computations keyed by the content of their inputs.

A pipeline run fits several models on the same training rows: the relevance filter
(:class:`ecgops.features.tsfeatures.RelevanceSelector`) of ``rf``, ``lgbm`` and ``lr`` on one
split's features, and of each grouped CV fold, tests the same feature matrix against the same
labels each time (about 10 s per MIT-BIH fit, most of a LightGBM fit). :class:`ContentMemo`
computes such a result once per distinct input and serves it to the other fits, including
fits running at the same time in other threads (they wait for the first instead of computing
the same thing twice). Keys are a hash of the arrays' bytes, shapes and dtypes plus the
computation's parameters, so a changed row, label or parameter is a new entry; results are
the same as without the memo. Only small results belong here (a feature mask), and the memo
keeps the last ``size`` of them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def content_key(*arrays: np.ndarray, params: Hashable = None) -> str:
    """A digest of the arrays (bytes, shape, dtype) and of ``params``.

    Args:
        *arrays: the computation's array inputs.
        params: its other inputs (hashable, with a stable ``repr``).

    Returns:
        A hex digest.
    """
    digest = hashlib.blake2b(digest_size=20)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    digest.update(repr(params).encode())
    return digest.hexdigest()


class ContentMemo:
    """Results by content key; one computation per key, concurrent callers wait for it.

    Args:
        size: entries kept (least recently used dropped first).
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._done: OrderedDict[str, Any] = OrderedDict()
        self._running: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """The stored result for ``key``, else ``compute()`` (stored if it returns).

        Args:
            key: :func:`content_key` of the inputs.
            compute: the computation (called at most once at a time per key; an exception
                is raised to its caller and nothing is stored).

        Returns:
            The result.
        """
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    self.hits += 1
                    return self._done[key]
                running = self._running.get(key)
                if running is None:
                    running = self._running[key] = threading.Lock()
                    running.acquire()
                    self.misses += 1
                    break
            with running:  # another thread computes this key: wait, then look again
                pass
        try:
            value = compute()
            with self._lock:
                self._done[key] = value
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._running[key]
            running.release()
