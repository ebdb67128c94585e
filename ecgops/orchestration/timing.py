"""Where the time goes: wall and CPU time of every task run of a pipeline.

:func:`timed` wraps a task's function (see :mod:`ecgops.orchestration.tasks`) and measures each
run: wall time, the process's CPU time (``time.process_time`` plus finished child processes,
``resource.getrusage``) and the calling thread's own CPU time. Concurrent trainings share the
process, so a call's process CPU includes that of the calls beside it; the thread CPU misses
the native threads (BLAS, OpenMP, torch) a call starts. The call sites
(:mod:`ecgops.orchestration.concurrency`) add each call's label and whether it was served from
the cache, in call order; :func:`write_file` writes them to ``outputs/timings/pipeline.json``,
:func:`tag_mlflow_runs` as MLflow tags ``ecgops.wall_s`` / ``ecgops.cpu_s`` on the trainings'
runs, and :func:`ecgops.orchestration.artifacts.publish_timings` does both and publishes the
markdown table as an artifact.

Task runs of another process (a deployment on the GPU pool, Dask workers) are listed without
times.
"""

from __future__ import annotations

import functools
import logging
import resource
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ecgops.config import Config
from ecgops.io import write_json
from ecgops.paths import timings_file

F = TypeVar("F", bound=Callable[..., Any])
WALL_TAG = "ecgops.wall_s"
"""MLflow tag: wall seconds of the task run that trained the run."""
CPU_TAG = "ecgops.cpu_s"
"""MLflow tag: process CPU seconds during that task run."""
DIGITS = 3
"""Seconds are recorded to the millisecond."""

_LOCK = threading.Lock()
_MEASURED: dict[str, dict[str, float]] = {}  # task run id -> times of its (retried) runs
_ORIGIN = [time.perf_counter()]  # when the table started (reset): calls' start_s count from it
_RECORDS: list[dict[str, Any]] = []
_ON_NOTE: list[Callable[[], Any]] = []  # called after each record (the file so far)
_WRITE_LOCK = threading.Lock()  # one listener call at a time: the last write has every record
logger = logging.getLogger(__name__)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: F) -> F:
    """Measure every run of a task function (retries add up) under its task run id.

    Args:
        fn: the function of a Prefect task.

    Returns:
        The same function, measured (signature and docstring kept for Prefect).
    """

    @functools.wraps(fn)
    def measured(*args: Any, **kwargs: Any) -> Any:
        # Only module-level names in here: Dask pickles this function (no lock by value).
        start = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            _store(start)

    return measured  # type: ignore[return-value]


def _clock() -> tuple[float, float, float]:
    """Wall, process (+ finished children) and thread CPU seconds now."""
    return time.perf_counter(), time.process_time() + _children_cpu(), time.thread_time()


def _store(start: tuple[float, float, float]) -> None:
    """Add the time since ``start`` to the current task run's record."""
    from prefect.runtime import task_run

    run_id = task_run.get_id()
    if not run_id:
        return
    now = _clock()
    spent = {k: now[i] - start[i] for i, k in enumerate(("wall_s", "cpu_s", "thread_cpu_s"))}
    with _LOCK:
        known = _MEASURED.setdefault(
            str(run_id), {"start_s": start[0] - _ORIGIN[0], **dict.fromkeys(spent, 0.0)}
        )  # a retry adds its times to the first try's, which gives the start
        for key, value in spent.items():
            known[key] += value


def note(stage: str, label: str, state: Any, value: Any = None) -> dict[str, Any]:
    """Record one finished call (its times, if it ran here; cached or not).

    Args:
        stage: the task's name (``train-classical``).
        label: the call's label (``train-classical[ptb beat lgbm raw]``).
        state: the call's final Prefect state (None when unknown).
        value: the call's result (a metrics record names its MLflow run).

    Returns:
        The record.
    """
    details = getattr(state, "state_details", None)
    run_id = str(getattr(details, "task_run_id", "") or "")
    with _LOCK:
        spent = _MEASURED.pop(run_id, None)
    cached = getattr(state, "name", None) == "Cached"
    record = {
        "stage": stage,
        "call": label,
        "cached": cached,
        "ok": bool(state is not None and state.is_completed()),
        "mlflow_run_id": _mlflow_run_id(value),
        **{
            k: (round(spent[k], DIGITS) if spent else (0.0 if cached else None))
            for k in ("wall_s", "cpu_s", "thread_cpu_s")
        },
        "start_s": round(spent["start_s"], DIGITS) if spent else None,
    }
    with _LOCK:
        _RECORDS.append(record)
        listeners = list(_ON_NOTE)
    with _WRITE_LOCK:
        for listener in listeners:
            try:
                listener()
            except Exception as exc:  # noqa: BLE001 - a timing write never fails a call
                logger.warning("timings not written after %s: %s", label, exc)
    return record


def _mlflow_run_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        run_id = value.get("mlflow_run_id") or value.get("run_id")
        return str(run_id) if run_id else None
    return None


def reset(on_note: Callable[[], Any] | None = None) -> None:
    """Forget every record (a pipeline starts a new table).

    Args:
        on_note: called after each new record, e.g. to write the table so far, so that a run
            cut off (killed, machine gone) still leaves the times of the calls it finished.
    """
    with _LOCK:
        _RECORDS.clear()
        _MEASURED.clear()
        _ORIGIN[0] = time.perf_counter()
        _ON_NOTE[:] = [on_note] if on_note else []


def records() -> list[dict[str, Any]]:
    """The records so far, in call order (copies)."""
    with _LOCK:
        return [dict(r) for r in _RECORDS]


def timings_markdown(rows: Sequence[Mapping[str, Any]], title: str = "Where the time goes") -> str:
    """A markdown table of task runs: stage, call, start s, wall s, cpu s, cached.

    Args:
        rows: timing records (:func:`note`).
        title: heading.

    Returns:
        Markdown text with a total line (wall of the calls that ran here).
    """
    lines = [
        f"# {title}",
        "",
        "| stage | call | start s | wall s | cpu s | cached |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['call']} | {_seconds(r.get('start_s'))}"
            f" | {_seconds(r.get('wall_s'))} | {_seconds(r.get('cpu_s'))}"
            f" | {'yes' if r.get('cached') else 'no'} |"
        )
    lines += [
        "",
        "start s: when the call began, from the start of the pipeline run (start + wall of the"
        " calls side by side show the critical path); cpu s: the process's CPU during the call;"
        " concurrent calls share the process.",
    ]
    return "\n".join(lines) + "\n"


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


def tag_mlflow_runs(cfg: Config, rows: Sequence[Mapping[str, Any]]) -> int:
    """Tag each training's MLflow run with its wall and CPU seconds (runs served from cache
    keep the tags of the run that trained them).

    Args:
        cfg: configuration (tracking URI).
        rows: timing records.

    Returns:
        The number of runs tagged.
    """
    todo = [r for r in rows if r.get("mlflow_run_id") and r.get("wall_s") is not None]
    todo = [r for r in todo if not r.get("cached")]
    if not todo:
        return 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    for r in todo:
        client.set_tag(r["mlflow_run_id"], WALL_TAG, f"{r['wall_s']:.{DIGITS}f}")
        client.set_tag(r["mlflow_run_id"], CPU_TAG, f"{r['cpu_s']:.{DIGITS}f}")
    return len(todo)


def write_file(cfg: Config, name: str = "pipeline") -> Path:
    """Write the records so far to ``outputs/timings/{name}.json``.

    Args:
        cfg: configuration (where ``outputs`` is).
        name: the file's name.

    Returns:
        The file written.
    """
    return write_json({"profile": cfg.profile, "runs": records()}, timings_file(cfg, name))
