"""Compute slots: at most ``pipeline.max_workers`` heavy task runs at once over every track.

The pipeline runs its local training tracks side by side (:mod:`flows.pipeline`); each track
submits its trainings to its own thread pool, and every heavy task run (a training, the
multi-lead build) first takes one slot of the process-wide :class:`SlotPool` opened by
:func:`slots_open`. A free slot goes to the waiting run whose task comes first in
``pipeline.slot_priority`` (then first come, first served), so the runs that unblock others
(the multi-lead table, the pretrained encoders) start early and the many short classical fits
fill the gaps at the end: the cores stay busy until the last training ends, instead of one
core idling through each track's tail. Outside :func:`slots_open` (a flow run on its own, the
CLI, Dask workers in other processes) :func:`slot` does not wait.

The wait is outside the task's measured time (:func:`ecgops.orchestration.timing.timed` runs
inside the slot), so the timings table shows what each run cost, not how long it queued.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class SlotPool:
    """A counting semaphore that wakes waiters by priority (lower first), then arrival.

    Args:
        size: slots (runs at once), at least 1.
        priority: task names, most urgent first; other names come after all of them.
    """

    def __init__(self, size: int, priority: Sequence[str] = ()) -> None:
        self.size = max(1, int(size))
        self._rank = {name: i for i, name in enumerate(priority)}
        self._free = self.size
        self._waiting: list[tuple[int, int]] = []  # (rank, ticket), a heap
        self._tickets = itertools.count()
        self._cond = threading.Condition()

    def rank(self, name: str) -> int:
        """The priority rank of a task name (unknown names last)."""
        return self._rank.get(name, len(self._rank))

    @contextmanager
    def held(self, name: str) -> Iterator[None]:
        """Hold one slot for the body (waits for one, by ``name``'s priority)."""
        entry = (self.rank(name), next(self._tickets))
        with self._cond:
            heapq.heappush(self._waiting, entry)
            self._cond.wait_for(lambda: self._free > 0 and self._waiting[0] == entry)
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next waiter may take a further free slot
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()


_POOL: SlotPool | None = None
_POOL_LOCK = threading.Lock()
_HELD = threading.local()  # slots the current thread holds (a run inside a run takes none)


@contextmanager
def slots_open(size: int, priority: Sequence[str] = ()) -> Iterator[SlotPool]:
    """Open the process-wide pool for the body (one pipeline run); nested opens reuse it.

    Args:
        size: slots, i.e. heavy task runs at once (``pipeline.max_workers``).
        priority: ``pipeline.slot_priority``.

    Yields:
        The pool in force.
    """
    global _POOL
    with _POOL_LOCK:
        outer = _POOL
        if outer is None:
            _POOL = SlotPool(size, priority)
        pool = _POOL
    try:
        yield pool
    finally:
        if outer is None:
            with _POOL_LOCK:
                _POOL = None


@contextmanager
def slot(name: str) -> Iterator[None]:
    """Hold a slot of the open pool for the body; no pool open: run at once."""
    pool = _POOL
    if pool is None or getattr(_HELD, "depth", 0):
        yield
        return
    with pool.held(name):
        _HELD.depth = 1
        try:
            yield
        finally:
            _HELD.depth = 0


def slotted(name: str, fn: F) -> F:
    """``fn`` run inside :func:`slot` (``name``: the task's name, for its priority)."""

    @functools.wraps(fn)
    def in_slot(*args: Any, **kwargs: Any) -> Any:
        with slot(name):
            return fn(*args, **kwargs)

    return in_slot  # type: ignore[return-value]
