"""Register each task's best run as a new version of ``ecgops-{task}``, alias ``challenger``.

**Which runs compete** (:mod:`ecgops.registry.candidates`). Only runs that were trained,
validated and tested on the same rows compare: the registry ranks the finished runs of the
task's experiment that logged a model named ``model``, in one split scheme, and share the
:class:`~ecgops.registry.candidates.RunScope` of the registering pipeline: its profile, its
data version (md5 of the current beat table) and its split version (md5 of the current split
assignments). Runs of another profile, an older beat table or another split stay in the
experiment but never compete: their validation sets are other rows.

**Which scheme.** The scheme whose runs are ranked is ``registry.select_scheme`` (default
``patient``: its validation patients are not in its training part, so the ranking rewards
models that generalise to new people), else ``splits.scheme``. The best run of that scheme,
by ``val_<registry.select_metric>`` (the validation part, never test), is the run that is
registered: the registered model is the very model whose validation figures the version's
tags carry. Ties go to the earliest run, so a rerun never displaces what is registered.

**Registered = evaluated.** The version's drift statistics come from that run's training part
and its record-level rule (:mod:`ecgops.evaluation.records`) is fitted on that run's own
predictions of its own validation records, never on another model's.

Registering is idempotent: a run already registered is reused, never registered twice. Every
registry write happens under the registry lock (:func:`ecgops.registry.client.registry_lock`).
MLflow 3: models are registered from the logged model's URI (``models:/<model_id>``);
aliases and tags replace the deprecated stages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import DataError, RegistryError
from ecgops.registry import drift
from ecgops.registry.candidates import (
    Candidate,
    RunScope,
    find_candidates,
    needs_context,
    run_config,
    selection_scheme,
)
from ecgops.registry.client import (
    CHALLENGER,
    MORPHOLOGY,
    kind_task,
    mlflow_client,
    registered_model_name,
    registry_lock,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

BeatData = pd.DataFrame | tuple[np.ndarray, np.ndarray]
"""Beats with labels: a beat table (``x0..x186``, ``label``) or ``(x, y)`` arrays."""
PROVENANCE_KEYS = (
    "task", "split_scheme", "data_version", "split_version", "git_commit", "profile", "seed",
)  # fmt: skip
"""Run tags copied onto a registered version."""


LEADS_TAG = "ecgops.leads"
"""Run tag of a multi-lead run: the leads its model reads (ecgops.training.multilead)."""


def run_leads(run: Run) -> list[str]:
    """The leads a multi-lead run's model reads ([] for a single-lead run)."""
    value = run.data.tags.get(LEADS_TAG, "")
    return [lead for lead in value.split(",") if lead]


def as_xy(
    data: BeatData, context: bool = False, leads: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Beats and labels from a beat table or an ``(x, y)`` pair.

    Args:
        data: a beat table or ``(x, y)``.
        context: a beat table's beats with every context column beside them (``x0..x186``
            then :data:`ecgops.features.context.ALL_CONTEXT_COLUMNS`; the record means are
            computed over the table's rows of each record when absent), for context models.
        leads: from a multi-lead table, these leads side by side (n, len(leads) * 187).

    Returns:
        float32 beats (n, 187), or (n, 187 + c) with ``context``, and int64 labels (n,).

    Raises:
        DataError: ``context`` for a table without RR context.
    """
    from ecgops.schema import BEAT_LEN, labels, signals

    if isinstance(data, pd.DataFrame):
        if leads:
            from ecgops.data.multilead_schema import lead_tensor

            return lead_tensor(data, leads, BEAT_LEN).reshape(len(data), -1), labels(data)
        if context:
            from ecgops.features.context import table_with_context

            return table_with_context(data), labels(data)
        return signals(data), labels(data)
    x, y = data
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def current_split(
    cfg: Config, task: str, scheme: str, run: Run, current: RunScope | None = None
) -> tuple[dict[str, pd.DataFrame] | None, str]:
    """The current split of the task, when its tables are the ones the run used.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: split scheme.
        run: the run (its ``data_version`` and ``split_version`` tags).
        current: the current scope, if already known (default: computed).

    Returns:
        ``(parts, "ok")`` or ``(None, reason)``.
    """
    now = (current or RunScope.current(cfg, task)).tags()
    for tag in ("data_version", "split_version"):
        used = run.data.tags.get(tag)
        if used and used != now[tag]:
            return None, f"run used {tag} {used}, the current one is {now[tag]}"
    try:
        from ecgops.data.splits import load_split

        return load_split(cfg, task, scheme), "ok"
    except (DataError, FileNotFoundError, ValueError) as exc:
        return None, f"split unavailable: {exc}"


def training_stats(
    cfg: Config,
    task: str,
    scheme: str,
    run: Run,
    train_data: BeatData | None,
    current: RunScope | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Reference statistics of the run's training data, or None with the reason.

    Without ``train_data`` the training part of the current split is used, but only when the
    current tables are the ones the run was trained on.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: the run's split scheme.
        run: the run.
        train_data: its training beats, if the caller has them.
        current: the current scope, if already known.

    Returns:
        ``(stats, "ok")`` or ``(None, reason)``.
    """
    if train_data is None:
        parts, note = current_split(cfg, task, scheme, run, current)
        if parts is None:
            return None, note
        train_data = parts["train"]
    leads = run_leads(run) if isinstance(train_data, pd.DataFrame) else []
    x, y = as_xy(train_data, leads=leads)
    if len(x) == 0:
        return None, "empty training part"
    if leads:  # the drift summaries are per beat of one lead: every lead's beats
        from ecgops.schema import BEAT_LEN

        x = x.reshape(-1, BEAT_LEN)
    stats = drift.reference_stats(x, y, len(cfg.class_names(task)), cfg.registry.drift_bins)
    return stats, "ok"


def fit_record_rule(
    cfg: Config,
    task: str,
    scheme: str,
    candidate: Candidate,
    val_data: pd.DataFrame | None = None,
    current: RunScope | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Learn the record-level decision rule of a run's model on its validation records.

    The candidate's own model predicts the validation part of the candidate's own split
    (see :mod:`ecgops.evaluation.records`); validation only, never test.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: the candidate's split scheme.
        candidate: the run whose model gets the rule.
        val_data: validation beats with a ``record`` column (default: the validation part of
            the current split, when its tables are the ones the run used).
        current: the current scope, if already known.

    Returns:
        ``(rule, "ok")`` or ``(None, reason)``.
    """
    from ecgops.evaluation.records import fit_rule, record_probabilities
    from ecgops.registry.model import load_model

    val = val_data
    if val is None:
        parts, note = current_split(cfg, task, scheme, candidate.run, current)
        if parts is None:
            return None, note
        val = parts["val"]
    if val.empty or "record" not in val.columns:
        return None, "no validation records"
    method = cfg.registry.record_aggregation
    leads = run_leads(candidate.run)
    try:
        model = load_model(candidate.model_uri, cfg)
        # the model's own input: its leads side by side, or the beats with their RR context
        x, _ = as_xy(val, context=needs_context(candidate.run), leads=leads)
        _, rec_p, rec_y = record_probabilities(model, val, method, inputs=x)
    except (RegistryError, DataError, ValueError) as exc:
        return None, f"validation prediction failed: {exc}"
    rule = fit_rule(rec_p, rec_y, method)
    rule["fitted_on"] = f"{scheme} validation records, run {candidate.run.info.run_id}"
    return rule, "ok"


def version_tags(
    cfg: Config,
    candidate: Candidate,
    stats: dict | None,
    note: str,
    record_rule: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Tags of a new version: provenance of its run, its metrics, its training statistics and
    its record-level decision rule.

    Args:
        cfg: configuration.
        candidate: the registered run.
        stats: its training data's drift statistics (or None).
        note: why there are no statistics, or ``ok``.
        record_rule: its record rule (or None: argmax).

    Returns:
        Tag name -> value.
    """
    run = candidate.run
    tags = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        "select_metric": f"val_{cfg.registry.select_metric}",
        "select_value": f"{candidate.metric:.6f}",
        "select_scheme": run.data.tags.get("split_scheme", ""),
    }
    for key in PROVENANCE_KEYS:
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
    scope: RunScope | None = None,
    kind: str = MORPHOLOGY,
) -> ModelVersion | None:
    """Register the task's best run (validation metric) as the ``challenger``.

    One registered model per kind: ``morphology`` ranks the runs whose model reads the beats
    alone and registers ``ecgops-{task}``; ``context`` the runs whose model reads the RR
    context (tag ``ecgops.needs_context``), registered as ``ecgops-{task}-context``.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: split scheme of the runs to rank and register (default
            :func:`selection_scheme`: ``registry.select_scheme``, else ``splits.scheme``).
        train_data: the run's training beats, for the drift statistics (default: the training
            part of the current split, when its tables are the ones the run used).
        val_data: validation beats with record ids, for the record rule (default: the
            validation part of the current split, under the same condition).
        kind: ``morphology`` or ``context`` (:func:`ecgops.registry.client.model_kinds`).
        scope: the runs that compete (default :meth:`RunScope.current`: this profile, the
            current beat table and split).

    Returns:
        The registered (or reused) model version, or None when no run qualifies.

    Raises:
        RegistryError: the registry lock could not be taken.
        TrackingUnavailable: the tracking server is unreachable.
    """
    scheme = selection_scheme(cfg, scheme)
    name = registered_model_name(cfg, task, kind)
    task = kind_task(task, kind)  # multilead: the ptb12 runs, tables and split
    current = RunScope.current(cfg, task)
    scope = scope or current
    client = mlflow_client(cfg)
    with registry_lock(cfg):
        candidates = find_candidates(client, cfg, task, scheme, scope, kind)
        if not candidates:
            log.warning(
                "%s: no finished %s-scheme run with a logged model (%s)", task, scheme, scope
            )
            return None
        best = candidates[0]
        log.info(
            "%s: best configuration %s (val %s on the %s scheme %.4f, %s): run %s",
            task, run_config(best.run, scheme), cfg.registry.select_metric, scheme,
            best.metric, scope, best.run.info.run_id,
        )  # fmt: skip
        version = existing_version(client, name, best.run.info.run_id)
        if version is None:
            data = (train_data, val_data, current)
            version = _create_version(client, cfg, task, scheme, name, best, data)
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
    data: tuple[BeatData | None, pd.DataFrame | None, RunScope],
) -> ModelVersion:
    """Create the version of ``best`` with its drift statistics and record rule."""
    from mlflow.exceptions import MlflowException

    train_data, val_data, current = data
    stats, note = training_stats(cfg, task, scheme, best.run, train_data, current)
    if stats is None:
        log.warning("%s: no drift statistics for run %s: %s", name, best.run.info.run_id, note)
    rule, rule_note = fit_record_rule(cfg, task, scheme, best, val_data, current)
    if rule is None:
        log.warning("%s: record rule left at argmax: %s", name, rule_note)
    try:
        client.create_registered_model(
            name,
            description=f"ecgops {task} beat classifier {name} (aliases: champion, challenger)",
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.create_model_version(
        name,
        source=best.model_uri,
        run_id=best.run.info.run_id,
        tags=version_tags(cfg, best, stats, note, rule),
        model_id=best.model_id,
    )
