"""Declaring the flows' tasks: one decorator per kind of task, policies applied in one place.

:func:`stage_task` makes the Prefect task of a stage of :data:`ecgops.stages.STAGES`: its
cache policy comes from the table, its results persist as JSON, it retries where a retry can
help (:func:`ecgops.orchestration.retries.retry_options`) and each run is timed.
:func:`plain_task` is the same for tasks that always run (no cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecgops.orchestration.caching import RESULT_SERIALIZER, InputsAndFiles
from ecgops.orchestration.retries import retry_options
from ecgops.orchestration.slots import slotted
from ecgops.orchestration.timing import timed

SLOTTED_KINDS = frozenset({"data", "train"})
"""Kinds of task that take a compute slot (:mod:`ecgops.orchestration.slots`) to run."""


def stage_task(name: str, kind: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: the cached, retried, timed Prefect task of one stage of the table.

    ``data`` and ``train`` tasks run in a compute slot (:mod:`ecgops.orchestration.slots`).

    Args:
        name: the task's name, as the stage table's ``task`` names it (``train-deep``).
        kind: ``io``, ``data``, ``train`` or ``registry`` (timeouts and retries).
        **options: further ``prefect.task`` options (``task_run_name``).

    Returns:
        A decorator of the task's function.
    """
    from prefect import task

    def decorate(fn: Callable[..., Any]) -> Any:
        body = slotted(name, timed(fn)) if kind in SLOTTED_KINDS else timed(fn)
        return task(
            name=name,
            cache_policy=InputsAndFiles.for_stage(name),
            persist_result=True,
            result_serializer=RESULT_SERIALIZER,
            **retry_options(kind),
            **options,
        )(body)

    return decorate


def plain_task(
    name: str, kind: str | None = None, **options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: a timed Prefect task that always runs (no cache).

    Args:
        name: the task's name.
        kind: as for :func:`stage_task`; None: no timeout and no retries.
        **options: further ``prefect.task`` options.

    Returns:
        A decorator of the task's function.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    def decorate(fn: Callable[..., Any]) -> Any:
        extra = retry_options(kind) if kind else {}
        return task(name=name, cache_policy=NO_CACHE, **extra, **options)(timed(fn))

    return decorate
