"""The project's model registry: model names, aliases, the MLflow client and the write lock.

Each task has one registered model per kind (:data:`MODEL_KINDS`): ``ecgops-{task}`` (the
experiment prefix, then the task) for morphology-only beats, the Kaggle CSV layout included,
and, for tasks whose beats carry RR context, ``ecgops-{task}-context`` for beats with their
context (what ``ecgops annotate`` uses). Each has its own challenger, champion and gate.
MLflow 3 aliases replace the deprecated stages: :data:`CHALLENGER` is what ``ecgops register``
proposed, :data:`CHAMPION` what the gate accepted, :data:`PREVIOUS_CHAMPION` what a rollback
restores. Every registry write happens under :func:`registry_lock`, so two pipeline runs at
once cannot interleave their read-then-write steps.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ecgops.config import Config
from ecgops.errors import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
MODEL_NAME = "model"
"""Name under which the trainers log the pyfunc model in their run."""
LOCK_POLL_S = 0.2
MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
"""MLflow error codes that mean "no such model, version or alias"."""
VERSION_URI = re.compile(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))")
"""``models:/name@alias`` or ``models:/name/version``."""
MORPHOLOGY = "morphology"
CONTEXT = "context"
MULTILEAD = "multilead"
MODEL_KINDS = (MORPHOLOGY, CONTEXT, MULTILEAD)
"""Registered model kinds: beats alone, beats with their RR context, multi-lead beats."""
CONTEXT_NAME_SUFFIX = "-context"
MULTILEAD_TASKS = {"ptb": "ptb12"}
"""Tasks with a multi-lead model -> the multi-lead table (and experiment) its runs use."""


def registered_model_name(cfg: Config, task: str, kind: str = MORPHOLOGY) -> str:
    """``ecgops-{task}`` (the experiment prefix, then the task), ``-context`` for that kind.

    Raises:
        RegistryError: an unknown kind, or the context kind for a task without context.
    """
    check_kind(task, kind)
    name = cfg.experiment_name(task)
    return name if kind == MORPHOLOGY else f"{name}-{kind}"


def model_kinds(task: str) -> list[str]:
    """The kinds registered for a task: morphology, context where its beats have it, and
    multilead where it has a multi-lead table (:data:`MULTILEAD_TASKS`)."""
    from ecgops.models import CONTEXT_TASKS

    kinds = [MORPHOLOGY]
    if task in CONTEXT_TASKS:
        kinds.append(CONTEXT)
    if task in MULTILEAD_TASKS:
        kinds.append(MULTILEAD)
    return kinds


def kind_task(task: str, kind: str) -> str:
    """The task whose experiment, tables and split the runs of a kind use (``ptb12`` for the
    multilead kind of ``ptb``; else the task itself)."""
    return MULTILEAD_TASKS[task] if kind == MULTILEAD else task


def check_kind(task: str, kind: str) -> None:
    """Refuse an unknown kind, or a context model for a task whose beats have no context.

    Raises:
        RegistryError: naming the kinds the task has.
    """
    if kind not in model_kinds(task):
        raise RegistryError(
            f"no {kind!r} model for {task}; its kinds are {', '.join(model_kinds(task))}"
        )


def lock_path(cfg: Config) -> Path:
    """The registry lock file: ``<outputs>/registry/.registry.lock``."""
    return cfg.path("outputs") / "registry" / ".registry.lock"


@contextmanager
def registry_lock(cfg: Config, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the project's registry (``fcntl.flock`` on :func:`lock_path`).

    Args:
        cfg: configuration.
        timeout_s: how long to wait (default ``registry.lock_timeout_s``).

    Yields:
        Nothing; the lock is held inside the ``with`` block.

    Raises:
        RegistryError: another process held the lock for longer than ``timeout_s``.
    """
    path = lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = cfg.registry.lock_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + wait
    with path.open("a+") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    raise RegistryError(
                        f"{path}: another ecgops process holds the registry lock "
                        f"(waited {wait:.0f} s); try again when it has finished"
                    ) from exc
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def mlflow_client(cfg: Config) -> MlflowClient:
    """An MLflow client on the configured tracking/registry URI (checked reachable).

    Args:
        cfg: configuration (``tracking`` section).

    Returns:
        The client.

    Raises:
        TrackingUnavailable: an HTTP tracking server does not answer.
    """
    from mlflow import MlflowClient

    from ecgops.tracking import configure

    uri = configure(cfg)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None (no such alias or model).

    Args:
        client: MLflow client.
        name: registered model name.
        alias: alias, e.g. :data:`CHAMPION`.

    Returns:
        The model version, or None.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in MISSING:
            return None
        raise


def uri_version(client: MlflowClient, model_uri: str) -> ModelVersion | None:
    """The registered version a ``models:/name@alias`` or ``models:/name/version`` URI names.

    Args:
        client: MLflow client.
        model_uri: any model URI.

    Returns:
        The version, or None for another kind of URI or a version that does not exist.
    """
    from mlflow.exceptions import MlflowException

    match = VERSION_URI.fullmatch(model_uri)
    if not match:
        return None
    name, alias, version = match.groups()
    if alias:
        return alias_version(client, name, alias)
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in MISSING:
            return None
        raise
