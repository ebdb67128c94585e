"""ContentMemo: one computation per input content, shared by threads, nothing kept on error."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ecgops.features.content_memo import ContentMemo, content_key


def test_the_key_follows_content_shape_dtype_and_params() -> None:
    a = np.arange(6.0)
    assert content_key(a, params=1) == content_key(a.copy(), params=1)
    assert content_key(a[::2]) == content_key(np.ascontiguousarray(a[::2]))  # views by value
    different = [
        content_key(a + 1e-12, params=1),
        content_key(a.reshape(2, 3), params=1),
        content_key(a.astype(np.float32), params=1),
        content_key(a, params=2),
    ]
    assert content_key(a, params=1) not in different and len(set(different)) == 4


def test_each_key_is_computed_once_and_old_keys_are_dropped() -> None:
    memo = ContentMemo(size=2)
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert [memo.get(k, lambda k=k: compute(k)) for k in "aab"] == ["A", "A", "B"]
    assert calls == ["a", "b"] and (memo.hits, memo.misses) == (1, 2)
    memo.get("c", lambda: compute("c"))  # a third key drops the least recently used, "a"
    memo.get("b", lambda: compute("b"))
    memo.get("a", lambda: compute("a"))
    assert calls == ["a", "b", "c", "a"]


def test_concurrent_callers_wait_for_the_first_computation() -> None:
    memo = ContentMemo(size=4)
    calls = []
    start = threading.Barrier(4)

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    results: list[int] = []

    def worker() -> None:
        start.wait()
        results.append(memo.get("k", slow))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 4 and len(calls) == 1


def test_a_failed_computation_stores_nothing() -> None:
    memo = ContentMemo(size=4)

    def fail() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        memo.get("k", fail)
    assert memo.get("k", lambda: 7) == 7
