"""Running task calls: one at a time or concurrently, with every outcome collected.

:func:`call` runs one Prefect task call now; :func:`run_concurrently` runs independent calls in
a thread pool of ``max_workers`` (or a Dask cluster, :func:`dask_runner`) and returns one
:class:`Outcome` per call, so one failure does not hide the others. Both record each call's
wall and CPU time (:mod:`ecgops.orchestration.timing`). Results persist under the project
(:func:`ecgops.orchestration.caching.results_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecgops.config import Config
from ecgops.orchestration import timing
from ecgops.orchestration.caching import results_dir


@dataclass(frozen=True)
class Outcome:
    """The outcome of one task call run by :func:`run_concurrently`."""

    label: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the call completed."""
        return self.error is None


def call_label(task: Any, params: Mapping[str, Any]) -> str:
    """A readable label of a task call, e.g. ``train-classical[ptb beat lgbm raw]``."""
    shown = [str(v) for v in params.values() if not isinstance(v, Config | dict | None)]
    return f"{task.name}[{' '.join(shown)}]"


def bind(task: Any, cfg: Config) -> Any:
    """The task with its results persisted under this project's :func:`results_dir`."""
    return task.with_options(result_storage=results_dir(cfg))


def run_concurrently(
    calls: Sequence[tuple[Any, Mapping[str, Any]]],
    cfg: Config,
    max_workers: int,
    runner: Any | None = None,
) -> list[Outcome]:
    """Run independent Prefect task calls concurrently and collect every outcome.

    Must be called inside a flow run. Failed calls are logged and returned as outcomes with
    an error (the others still run), so the caller reports all of them and decides.

    Args:
        calls: ``(task, parameters)`` pairs.
        cfg: configuration (where results persist).
        max_workers: threads, i.e. task calls running at once (at least 1).
        runner: a Prefect task runner to use instead (e.g. :func:`dask_runner`).

    Returns:
        One :class:`Outcome` per call, in order.
    """
    from prefect import get_run_logger
    from prefect.task_runners import ThreadPoolTaskRunner

    logger = get_run_logger()
    runner = runner or ThreadPoolTaskRunner(max_workers=max(1, int(max_workers)))
    with runner:
        futures = [
            (call_label(task, params), runner.submit(bind(task, cfg), parameters=dict(params)))
            for task, params in calls
        ]
        outcomes = []
        for (task, _), (label, future) in zip(calls, futures, strict=True):
            try:
                outcomes.append(Outcome(label, value=future.result()))
            except Exception as exc:  # noqa: BLE001 - reported, the caller decides
                logger.error("%s failed: %s", label, exc)
                outcomes.append(Outcome(label, error=f"{type(exc).__name__}: {exc}"))
            timing.note(task.name, label, _state(future), outcomes[-1].value)
    return outcomes


def _state(future: Any) -> Any:
    """A finished future's final state (None when it cannot be read)."""
    try:
        return future.state
    except Exception:  # noqa: BLE001 - timing is best effort, never fails a run
        return None


def dask_runner(n_workers: int = 2, address: str | None = None) -> Any:
    """A prefect-dask task runner: a running scheduler, or a local cluster on 127.0.0.1.

    Args:
        n_workers: local cluster size (processes with one thread each: no GIL contention,
            and one model training per core).
        address: ``tcp://host:8786`` of a running Dask scheduler (other machines).
    """
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": max(1, int(n_workers)),
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",  # loopback, a free port
        },
    )


def prepare_tracking(cfg: Config, tasks: Sequence[str]) -> str:
    """Create the MLflow store and the tasks' experiments once, before concurrent runs.

    Concurrent first runs would otherwise race to create a fresh SQLite store (its schema
    migrations) or the same experiment. Also fails fast when a tracking server is down.

    Args:
        cfg: configuration (tracking URI, experiment prefix).
        tasks: ``ptb`` and/or ``mitbih``.

    Returns:
        The tracking URI.

    Raises:
        TrackingUnavailable: the tracking server is unreachable.
    """
    from ecgops.tracking import configure, ensure_experiment

    uri = configure(cfg)
    for task in tasks:
        ensure_experiment(cfg, task)
    return uri


def call(prefect_task: Any, cfg: Config, /, **params: Any) -> Any:
    """Run one Prefect task call now (results persisted under the project) and time it.

    Args:
        prefect_task: the task.
        cfg: configuration (passed to the task as ``cfg``).
        **params: the task's other arguments.

    Returns:
        The task's result (its exception is raised when it failed).
    """
    state = bind(prefect_task, cfg)(cfg=cfg, **params, return_state=True)
    label = call_label(prefect_task, params)
    try:
        value = state.result()
    except BaseException:
        timing.note(prefect_task.name, label, state)
        raise
    timing.note(prefect_task.name, label, state, value)
    return value


def raise_on_failures(outcomes: Sequence[Outcome], what: str) -> None:
    """Raise one error listing every failed call, if any failed."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines = "; ".join(f"{o.label}: {o.error}" for o in failed)
        raise RuntimeError(f"{what}: {len(failed)} of {len(outcomes)} runs failed: {lines}")
