"""Register each task's best run as a new version of ``ecgops-{task}``, alias ``challenger``.

The best run is chosen by ``val_<registry.select_metric>`` (the validation part, never test)
among the finished runs of the task's experiment, in one split scheme, that logged a model
named ``model``. Ties go to the earliest run, so a rerun never displaces what is registered.

With ``registry.select_scheme`` (default ``patient``) the *configurations* (``lgbm-raw``,
``cnn``, ...) are ranked by their validation metric on that scheme, whose validation patients
are not in its training part, and the winner's run on the registering scheme is registered.
On the ``beat`` scheme a validation beat's patient is also in the training part, so its
ranking rewards models that memorise patients; the patient ranking rewards models that
generalise to new people, which is what a registered model meets. The registered run itself
was trained on the registering scheme's (larger, more varied) training part.
Registering is idempotent: a run already registered is reused, never registered twice. Every
registry write happens under a file lock (:func:`registry_lock`), so two pipeline runs at once
cannot interleave their read-then-write steps.

MLflow 3: models are registered from the logged model's URI (``models:/<model_id>``);
aliases and tags replace the deprecated stages.
"""

from __future__ import annotations

import fcntl
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import DataError, RegistryError
from ecgops.registry import drift

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
MODEL_NAME = "model"
"""Name under which the trainers log the pyfunc model in their run."""
LOCK_POLL_S = 0.2
BeatData = pd.DataFrame | tuple[np.ndarray, np.ndarray]
"""Beats with labels: a beat table (``x0..x186``, ``label``) or ``(x, y)`` arrays."""


def registered_model_name(cfg: Config, task: str) -> str:
    """``ecgops-{task}`` (the experiment prefix, then the task)."""
    return cfg.experiment_name(task)


def lock_path(cfg: Config) -> Path:
    """The registry lock file: ``<outputs>/registry/.registry.lock``."""
    return cfg.path("outputs") / "registry" / ".registry.lock"


@contextmanager
def registry_lock(cfg: Config, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the project's registry (``fcntl.flock`` on :func:`lock_path`).

    Args:
        cfg: configuration.
        timeout_s: how long to wait (default ``registry.lock_timeout_s``).

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
    """An MLflow client on the configured tracking/registry URI (checked reachable)."""
    from mlflow import MlflowClient

    from ecgops.tracking import configure

    uri = configure(cfg)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None (no such alias or model)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


@dataclass(frozen=True)
class Candidate:
    """A run that may be registered."""

    run: Run
    metric: float
    model_uri: str
    model_id: str | None
    sibling: Candidate | None = None
    """The same configuration's best run on the ranking scheme (see :func:`rank_candidates`)."""


def find_candidates(client: MlflowClient, cfg: Config, task: str, scheme: str) -> list[Candidate]:
    """Finished runs of the task and scheme with a logged model, best validation metric first.

    Args:
        client: MLflow client.
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: split scheme tag of the runs.

    Returns:
        Candidates sorted by ``val_<select_metric>`` descending, then by start time.
    """
    exp = client.get_experiment_by_name(cfg.experiment_name(task))
    if exp is None:
        return []
    metric = f"val_{cfg.registry.select_metric}"
    runs = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.task = '{task}' and tags.split_scheme = '{scheme}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    models = _logged_models_by_run(client, exp.experiment_id)
    out = []
    for run in runs:
        value = run.data.metrics.get(metric)
        if value is None or not math.isfinite(value):
            continue
        logged = models.get(run.info.run_id)
        if logged is not None:
            uri, model_id = logged
        elif MODEL_NAME in _run_artifacts(client, run.info.run_id):
            uri, model_id = f"runs:/{run.info.run_id}/{MODEL_NAME}", None  # pre-3.0 layout
        else:
            continue
        out.append(Candidate(run, float(value), uri, model_id))
    out.sort(key=lambda c: (-c.metric, c.run.info.start_time or 0, c.run.info.run_id))
    return out


def run_config(run: Run, scheme: str) -> str:
    """The run's configuration name (tag :data:`~ecgops.tracking.CONFIG_TAG`, else its name)."""
    from ecgops.tracking import CONFIG_TAG, config_name

    return run.data.tags.get(CONFIG_TAG) or config_name(run.info.run_name or "", scheme)


def rank_candidates(
    client: MlflowClient, cfg: Config, task: str, scheme: str, select_scheme: str | None
) -> tuple[list[Candidate], str]:
    """Candidates of ``scheme``, best first, ranked on ``select_scheme``'s validation metric.

    Each candidate's ``metric`` becomes its configuration's best validation value on
    ``select_scheme`` and its ``sibling`` that run; candidates whose configuration has no run
    there are dropped. Without ``select_scheme`` (or equal to ``scheme``), or when no
    configuration matches, the candidates keep their own validation metric.

    Returns:
        ``(candidates, the scheme whose validation metric ranked them)``.
    """
    candidates = find_candidates(client, cfg, task, scheme)
    if not select_scheme or select_scheme == scheme or not candidates:
        return candidates, scheme
    ranking: dict[str, Candidate] = {}
    for c in find_candidates(client, cfg, task, select_scheme):
        ranking.setdefault(run_config(c.run, select_scheme), c)
    ranked = [
        Candidate(c.run, ranking[key].metric, c.model_uri, c.model_id, sibling=ranking[key])
        for c in candidates
        if (key := run_config(c.run, scheme)) in ranking
    ]
    if not ranked:
        log.warning(
            "%s: no %s-scheme run shares a configuration with the %s-scheme runs; ranking on %s",
            task, select_scheme, scheme, scheme,
        )  # fmt: skip
        return candidates, scheme
    ranked.sort(key=lambda c: (-c.metric, c.run.info.start_time or 0, c.run.info.run_id))
    return ranked, select_scheme


def _logged_models_by_run(client: MlflowClient, experiment_id: str) -> dict[str, tuple[str, str]]:
    """run id -> (model URI, model id) of the READY logged models named ``model``."""
    out: dict[str, tuple[str, str]] = {}
    token = None
    while True:
        page = client.search_logged_models([experiment_id], page_token=token)
        for m in page:
            status = str(getattr(m.status, "name", m.status))
            if m.name == MODEL_NAME and m.source_run_id and "READY" in status.upper():
                out.setdefault(m.source_run_id, (m.model_uri, m.model_id))
        token = page.token
        if not token:
            break
    return out


def _run_artifacts(client: MlflowClient, run_id: str) -> set[str]:
    try:
        return {a.path for a in client.list_artifacts(run_id)}
    except Exception:  # noqa: BLE001 - an unreadable artifact store means no usable model
        return set()


def as_xy(data: BeatData) -> tuple[np.ndarray, np.ndarray]:
    """Beats and labels from a beat table or an ``(x, y)`` pair."""
    from ecgops.schema import labels, signals

    if isinstance(data, pd.DataFrame):
        return signals(data), labels(data)
    x, y = data
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def current_split(
    cfg: Config, task: str, scheme: str, run: Run
) -> tuple[dict[str, pd.DataFrame] | None, str]:
    """The current split of the task, when its beat table is the run's data version.

    Returns:
        ``(parts, "ok")`` or ``(None, reason)``.
    """
    from ecgops.tracking import data_version

    trained_on = run.data.tags.get("data_version")
    current = data_version(cfg, task)
    if trained_on and trained_on != current:
        return None, f"run trained on data version {trained_on}, current table is {current}"
    try:
        from ecgops.data.splits import load_split

        return load_split(cfg, task, scheme), "ok"
    except (DataError, FileNotFoundError, ValueError) as exc:
        return None, f"split unavailable: {exc}"


def training_stats(
    cfg: Config, task: str, scheme: str, run: Run, train_data: BeatData | None
) -> tuple[dict[str, Any] | None, str]:
    """Reference statistics of the run's training data, or None with the reason.

    Without ``train_data`` the training part of the current split is used, but only when the
    current beat table is the data version the run was trained on.
    """
    if train_data is None:
        parts, note = current_split(cfg, task, scheme, run)
        if parts is None:
            return None, note
        train_data = parts["train"]
    x, y = as_xy(train_data)
    if len(x) == 0:
        return None, "empty training part"
    stats = drift.reference_stats(x, y, len(cfg.class_names(task)), cfg.registry.drift_bins)
    return stats, "ok"


def fit_record_rule(
    cfg: Config,
    task: str,
    scheme: str,
    candidate: Candidate,
    val_data: pd.DataFrame | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Learn the record-level decision rule of a run's model on the validation records.

    See :mod:`ecgops.evaluation.records`. Validation part only, never test.

    Args:
        val_data: validation beats with a ``record`` column (default: the validation part of
            the current split, when its data version matches the run's).

    Returns:
        ``(rule, "ok")`` or ``(None, reason)``.
    """
    from ecgops.evaluation.records import fit_rule
    from ecgops.predict import load_model, record_probabilities

    val = val_data
    if val is None:
        parts, note = current_split(cfg, task, scheme, candidate.run)
        if parts is None:
            return None, note
        val = parts["val"]
    if val.empty or "record" not in val.columns:
        return None, "no validation records"
    try:
        _, rec_p, rec_y = record_probabilities(cfg, load_model(candidate.model_uri, cfg), val)
    except (RegistryError, DataError, ValueError) as exc:
        return None, f"validation prediction failed: {exc}"
    return fit_rule(rec_p, rec_y, cfg.registry.record_aggregation), "ok"


def version_tags(
    cfg: Config,
    candidate: Candidate,
    stats: dict | None,
    note: str,
    record_rule: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Tags of a new version: provenance of its run, its metrics, its training statistics and
    its record-level decision rule."""
    run = candidate.run
    tags = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        "select_metric": f"val_{cfg.registry.select_metric}",
        "select_value": f"{candidate.metric:.6f}",
    }
    for key in ("task", "split_scheme", "data_version", "git_commit", "profile", "seed"):
        if key in run.data.tags:
            tags[key] = run.data.tags[key]
    for key, value in sorted(run.data.metrics.items()):
        if key.startswith(("val_", "test_")):
            tags[f"metric.{key}"] = f"{value:.6f}"
    if stats is not None:
        tags[drift.STATS_TAG] = drift.to_tag(stats)
    tags["ecgops.train_stats_status"] = note
    if record_rule is not None:
        from ecgops.evaluation.records import RULE_TAG, rule_to_tag

        tags[RULE_TAG] = rule_to_tag(record_rule)
    return tags


def existing_version(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version of ``name`` registered from ``run_id``, if any (lowest version)."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except Exception:  # noqa: BLE001 - no registered model yet
        return None
    versions = [v for v in versions if str(v.status).upper().endswith("READY")] or list(versions)
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register_best(
    cfg: Config,
    task: str,
    scheme: str | None = None,
    train_data: BeatData | None = None,
    val_data: pd.DataFrame | None = None,
) -> ModelVersion | None:
    """Register the task's best run (validation metric) as the ``challenger``.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: split scheme of the runs to choose from (default ``splits.scheme``: the scheme
            whose test part the promotion gate evaluates on).
        train_data: the run's training beats, for the drift statistics (default: the training
            part of the current split, when its data version matches the run's).
        val_data: validation beats with record ids, for the record rule (default: the
            validation part of the current split, under the same condition).

    Returns:
        The registered (or reused) model version, or None when no run qualifies.

    Raises:
        RegistryError: the registry lock could not be taken.
        TrackingUnavailable: the tracking server is unreachable.
    """
    scheme = scheme or cfg.splits.scheme
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    with registry_lock(cfg):
        candidates, ranked_on = rank_candidates(
            client, cfg, task, scheme, cfg.registry.select_scheme
        )
        if not candidates:
            log.warning("%s: no finished %s-scheme run with a logged model", task, scheme)
            return None
        best = candidates[0]
        log.info(
            "%s: best configuration %s (val %s on the %s scheme %.4f): run %s",
            task, run_config(best.run, scheme), cfg.registry.select_metric, ranked_on,
            best.metric, best.run.info.run_id,
        )  # fmt: skip
        version = existing_version(client, name, best.run.info.run_id)
        if version is None:
            version = _create_version(
                client, cfg, task, scheme, name, best, train_data, val_data, ranked_on
            )
        else:
            log.info(
                "%s: run %s is already version %s", name, best.run.info.run_id, version.version
            )
        client.set_registered_model_alias(name, CHALLENGER, version.version)
        return client.get_model_version(name, version.version)


def _create_version(
    client: MlflowClient,
    cfg: Config,
    task: str,
    scheme: str,
    name: str,
    best: Candidate,
    train_data: BeatData | None,
    val_data: pd.DataFrame | None,
    ranked_on: str,
) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    stats, note = training_stats(cfg, task, scheme, best.run, train_data)
    if stats is None:
        log.warning("%s: no drift statistics for run %s: %s", name, best.run.info.run_id, note)
    # The record threshold is learned where validation records are new patients: on the
    # sibling run of the ranking scheme when there is one (on the beat scheme a validation
    # record's patient is also in the training part, so its probabilities are overconfident).
    rule_run, rule_scheme = (best.sibling, ranked_on) if best.sibling else (best, scheme)
    rule, rule_note = fit_record_rule(cfg, task, rule_scheme, rule_run, val_data)
    if rule is not None:
        rule["fitted_on"] = f"{rule_scheme} validation records, run {rule_run.run.info.run_id}"
    if rule is None:
        log.warning("%s: record rule left at argmax: %s", name, rule_note)
    try:
        client.create_registered_model(
            name, description=f"ecgops {task} beat classifier (aliases: champion, challenger)"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.create_model_version(
        name,
        source=best.model_uri,
        run_id=best.run.info.run_id,
        tags={**version_tags(cfg, best, stats, note, rule), "select_scheme": ranked_on},
        model_id=best.model_id,
    )
