"""Which model the report's summary shows per task: the registry's champion, else the best by
validation.

The champion comes from the MLflow registry when it is reachable (the ``champion`` alias of each
registered model of the task, :mod:`ecgops.registry.client`), with its figures on the sealed
gate set and their bootstrap intervals read from the version's ``gate.*`` tags (written by
:mod:`ecgops.registry.promote`). Without a registry (or without a champion) the summary shows
the best model by validation balanced accuracy on the patient split (else the beat split), and
no gate figures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.evaluation.report_format import LIKE_FOR_LIKE, NEW_PATIENTS, best_by_validation
from ecgops.registry.client import MODEL_KINDS, MORPHOLOGY, kind_task

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"


@dataclass
class Champion:
    """The model a task's summary is about.

    Attributes:
        task: ``ptb`` or ``mitbih``.
        name: configuration name (the metrics record's ``name``, e.g. ``lgbm-raw``).
        scheme: the split scheme the model was trained on.
        source: where it comes from, in words.
        kind: registered model kind (``morphology`` / ``context`` / ``multilead``; empty for
            the fallback).
        run_id: its MLflow run (empty when unknown).
        gate: gate-set figures: metric -> value, ``{metric}_low`` / ``{metric}_high`` for the
            intervals (empty without a registry decision).
        gate_note: what the gate set and the intervals are (from the ``gate.*`` tags).
    """

    task: str
    name: str
    scheme: str
    source: str
    kind: str = ""
    run_id: str = ""
    gate: dict[str, float] = field(default_factory=dict)
    gate_note: str = ""


def model_kind(model: str) -> str:
    """The kind of a registered model from its name (``registered_model_name`` appends
    ``-{kind}`` to every kind but morphology).

    Args:
        model: registered model name, e.g. ``ecgops-ptb-multilead``.

    Returns:
        ``context`` / ``multilead`` for names ending in ``-context`` / ``-multilead``, else
        ``morphology``.
    """
    for kind in MODEL_KINDS:
        if kind != MORPHOLOGY and model.endswith(f"-{kind}"):
            return kind
    return MORPHOLOGY


def champion_from_tags(task: str, model: str, version: str, tags: dict[str, str]) -> Champion:
    """A registry champion from its model version's tags.

    Args:
        task: the task.
        model: registered model name.
        version: version number.
        tags: the version's tags (``run_id``, ``run_name``, ``select_scheme``, ``gate.*``).

    Returns:
        The champion; its gate figures are those of its side (``gate.role``) in its last
        promotion decision.
    """
    from ecgops.tracking import config_name

    scheme = tags.get("select_scheme") or tags.get("split_scheme") or ""
    role = tags.get("gate.role", "challenger")
    prefix = f"gate.{role}."
    gate = {}
    for key, value in tags.items():
        if key.startswith(prefix):
            try:
                gate[key[len(prefix) :]] = float(value)
            except ValueError:
                continue
    note = tags.get("gate.eval_data", "")
    try:
        boot = json.loads(tags.get("gate.bootstrap", "{}"))
    except json.JSONDecodeError:
        boot = {}
    if boot:
        note += (
            f"; {float(boot.get('level', 0)):.0%} bootstrap intervals over "
            f"{boot.get('groups', '?')} patients/records"
        )
    return Champion(
        task=task,
        name=config_name(tags.get("run_name", ""), scheme) or "?",
        scheme=scheme,
        source=f"registry champion: `{model}` version {version}",
        kind=model_kind(model),
        run_id=tags.get("run_id", ""),
        gate=gate,
        gate_note=note.strip("; "),
    )


def registry_champions(cfg: Config, task: str) -> list[Champion]:
    """The task's registered champions (one per model kind that has one).

    Args:
        cfg: configuration (tracking URI, experiment prefix).

    Returns:
        The champions; empty when the registry is not reachable, does not exist yet (a SQLite
        file that is not there is not created) or holds no champion.
    """
    uri = cfg.tracking_uri
    if uri.startswith(SQLITE_PREFIX) and not Path(uri[len(SQLITE_PREFIX) :]).exists():
        return []
    from ecgops.registry.client import (
        CHAMPION,
        alias_version,
        mlflow_client,
        model_kinds,
        registered_model_name,
    )

    out = []
    try:
        client = mlflow_client(cfg)
        for kind in model_kinds(task):
            name = registered_model_name(cfg, task, kind)
            version = alias_version(client, name, CHAMPION)
            if version is not None:
                out.append(champion_from_tags(task, name, version.version, version.tags or {}))
    except Exception as exc:  # noqa: BLE001 - the report works without a registry
        log.warning("report: no registry champions for %s (%s)", task, exc)
        return []
    return out


def fallback_champion(records: list[dict[str, Any]], task: str) -> Champion | None:
    """The best model by validation balanced accuracy (no registry champion): on the patient
    split, else on the beat split when no patient-split model has validation figures.

    Args:
        records: metrics records.
        task: the task.

    Returns:
        The champion, or None when no record of the task has validation metrics.
    """
    for scheme in (NEW_PATIENTS, LIKE_FOR_LIKE):
        best = best_by_validation(records, task, scheme)
        if best is not None:
            return Champion(
                task=task,
                name=best["name"],
                scheme=scheme,
                source=f"best by validation balanced accuracy, {scheme} split "
                "(no registry champion)",
                run_id=str(best.get("mlflow_run_id", "")),
            )
    return None


def champions(cfg: Config, records: list[dict[str, Any]], task: str) -> list[Champion]:
    """The registry's champions of a task, else the best-by-validation fallback (or none)."""
    found = registry_champions(cfg, task)
    if found:
        return found
    fallback = fallback_champion(records, task)
    return [fallback] if fallback else []


def record_of(
    records: list[dict[str, Any]], champion: Champion, scheme: str
) -> dict[str, Any] | None:
    """The champion's metrics record on a scheme: its own run when it was trained on that
    scheme (matched by run id, else by name), else the same configuration's run on it. A
    multilead champion's records are those of its multi-lead task (``ptb12`` for ``ptb``).

    Args:
        records: metrics records.
        champion: the champion.
        scheme: ``beat`` or ``patient``.

    Returns:
        The record, or None.
    """
    task = kind_task(champion.task, champion.kind)
    same = [r for r in records if r["task"] == task and r["scheme"] == scheme]
    if champion.run_id and scheme == champion.scheme:
        for r in same:
            if r.get("mlflow_run_id") == champion.run_id:
                return r
    return next((r for r in same if r["name"] == champion.name), None)
