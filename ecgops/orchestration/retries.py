"""Retry rules of the flows' tasks: retry only where a retry can help.

:func:`is_transient` says yes for an unreachable MLflow server or a network/IO hiccup, no for
bad data, a registry refusal or a bug; :func:`retry_options` turns a task kind into Prefect
task options (timeouts, retries with exponential back-off and jitter).
"""

from __future__ import annotations

import os
from typing import Any

from ecgops.errors import EcgopsError, TrackingUnavailable

# Policy constants: orchestration, not modelling (no effect on any result).
RETRIES = 3
"""Retries of a task whose failure is transient (then it fails for good)."""
RETRY_BACKOFF_S = float(os.environ.get("ECGOPS_RETRY_BACKOFF_S", "10"))
"""First retry delay; each further retry doubles it (10, 20, 40 s). Env override for tests."""
RETRY_JITTER = 0.2
"""Random +-20 % on each delay, so concurrent retries do not hit a server at once."""
TIMEOUT_S: dict[str, int | None] = {
    "io": 30 * 60,  # copy raw records, import CSVs
    "data": 2 * 3600,  # build, validate, split, features on the full data
    "registry": 15 * 60,  # register, promote (includes a smoke prediction)
    "train": None,  # see below
}
"""Hard limit per task kind, in seconds: a hung task fails instead of blocking the pipeline.

These tasks run in the flow's own thread, where Prefect can interrupt them. Trainings run in
worker threads (or Dask workers), where Python cannot interrupt a blocking call: Prefect would
only warn; their budget is the profile's epochs and row caps, the MLflow client has its own
HTTP timeouts (ecgops.tracking), and a hung run is stopped by cancelling the flow run (the
worker ends its process).
"""
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_TRANSIENT_NAMES = frozenset(
    {"OperationalError", "ConnectTimeout", "ReadTimeout", "MaxRetryError", "RemoteDisconnected"}
)
_TRANSIENT_MLFLOW_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"}
)


def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying the call that raised ``exc`` can help.

    Transient: the MLflow server unreachable (:class:`TrackingUnavailable`), connection and
    timeout errors, a locked SQLite database, MLflow "temporarily unavailable" answers.
    Permanent: bad data (:class:`DataError`, :class:`ValidationFailed`), registry refusals,
    missing files, Prefect's own task timeout, and any other exception (a bug does not go
    away by running it again). The exception's cause chain is searched too.

    Args:
        exc: the exception a task raised.

    Returns:
        True when a retry may succeed.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TrackingUnavailable):
            return True
        if isinstance(exc, EcgopsError) or type(exc).__name__ == "TaskRunTimeoutError":
            return False
        if isinstance(exc, _PERMANENT_OS_ERRORS):
            return False
        if isinstance(exc, OSError):  # connection refused or reset, timeouts, network I/O
            return True
        if type(exc).__name__ in _TRANSIENT_NAMES:
            return True
        if getattr(exc, "error_code", None) in _TRANSIENT_MLFLOW_CODES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task run only on a transient error."""
    data = getattr(state, "data", None)
    if not isinstance(data, BaseException):
        try:
            data = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - the result may not be readable
            return False
    return is_transient(data) if isinstance(data, BaseException) else False


def retry_options(kind: str) -> dict[str, Any]:
    """Prefect task options for a task kind: retries with back-off where a retry can help.

    Args:
        kind: ``io``, ``data``, ``train`` or ``registry`` (see :data:`TIMEOUT_S`). ``data``
            tasks read local files only: a retry cannot help them, they get no retries.

    Returns:
        Keyword arguments for ``prefect.task``.
    """
    from prefect.tasks import exponential_backoff

    options: dict[str, Any] = {}
    if TIMEOUT_S[kind] is not None:
        options["timeout_seconds"] = TIMEOUT_S[kind]
    if kind != "data":
        options.update(
            retries=RETRIES,
            retry_delay_seconds=exponential_backoff(backoff_factor=RETRY_BACKOFF_S),
            retry_jitter_factor=RETRY_JITTER,
            retry_condition_fn=retry_if_transient,
        )
    return options
