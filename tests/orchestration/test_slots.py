"""Compute slots: a bounded, priority-ordered pool shared by every track of a pipeline run."""

from __future__ import annotations

import threading
import time

from ecgops.config import load_config
from ecgops.orchestration.slots import SlotPool, slot, slots_open
from ecgops.stages import STAGES


def _run_all(names: list[str], pool_size: int, priority: list[str]) -> tuple[list[str], int]:
    """Queue one thread per name while the pool is full; return their start order, peak use."""
    order: list[str] = []
    running = peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def work(name: str) -> None:
        nonlocal running, peak
        with slot(name):
            with lock:
                order.append(name)
                running += 1
                peak = max(peak, running)
            gate.wait(5)
            time.sleep(0.01)
            with lock:
                running -= 1

    with slots_open(pool_size, priority):
        blockers = [threading.Thread(target=work, args=("blocker",)) for _ in range(pool_size)]
        for t in blockers:
            t.start()
        while len(order) < pool_size:
            time.sleep(0.005)
        waiters = []
        for name in names:  # queued in this order while every slot is held
            waiters.append(threading.Thread(target=work, args=(name,)))
            waiters[-1].start()
            time.sleep(0.05)
        gate.set()
        for t in blockers + waiters:
            t.join(10)
    return order[pool_size:], peak


def test_pool_bounds_concurrency_and_serves_by_priority() -> None:
    started, peak = _run_all(["classical", "other", "deep", "pretrain"], 1, ["pretrain", "deep"])
    assert peak == 1
    assert started == ["pretrain", "deep", "classical", "other"]  # unlisted: arrival order


def test_two_slots_run_two_at_once() -> None:
    _, peak = _run_all(["a", "b", "c", "d"], 2, [])
    assert peak == 2


def test_no_pool_and_nested_slots_do_not_wait() -> None:
    with slot("train-deep"):  # no pool open: runs at once
        pass
    done = threading.Event()

    def nested() -> None:
        with slot("train-deep"), slot("train-deep"):  # a run inside a run takes no 2nd slot
            done.set()

    with slots_open(1):
        t = threading.Thread(target=nested)
        t.start()
        t.join(5)
    assert done.is_set()


def test_nested_open_reuses_the_pool() -> None:
    with slots_open(2) as outer, slots_open(5) as inner:
        assert inner is outer and outer.size == 2


def test_pool_ranks_unlisted_names_last() -> None:
    pool = SlotPool(1, ["pretrain"])
    assert pool.rank("pretrain") == 0 and pool.rank("train-classical") == 1


def test_slot_priority_names_are_stage_tasks() -> None:
    tasks = {s.task for s in STAGES if s.task}
    for profile in ("smoke", "quick", "full"):
        names = load_config(profile=profile).pipeline.slot_priority
        assert names and set(names) <= tasks, set(names) - tasks
