"""Promotion gate: the ``challenger`` becomes ``champion`` only if it is better and passes checks.

Both versions are evaluated on the **same sealed data**: the task's gate set
(:func:`ecgops.data.splits.load_gate`: patients / DS1 records that no training, validation or
test part of either scheme holds, so no model was fitted, tuned, selected or reported on them;
or data given explicitly). Both predict through :class:`ecgops.registry.model.LoadedModel`
(chunks of ``serving.batch_chunk_size``); their scores carry bootstrap intervals over the gate's
patients / records, and the paired interval of the difference decides ``better``
(:mod:`ecgops.registry.gate`). The challenger must pass every check:

- ``load``: the version's artifacts download and load as a pyfunc model;
- ``signature``: the output signature is ``pred, pred_name, p_0..p_{k-1}`` for the task's
  classes and the model metadata declares the task, its class names and the Kaggle input;
- ``smoke``: a prediction on ``registry.smoke_beats`` evaluation beats returns one valid row
  per beat (probabilities in [0, 1] summing to 1, names matching classes), the same for the
  named and the unnamed 188-column layout, and a NaN row is refused;
- ``size``: the model's artifacts weigh at most ``registry.max_model_mb``;
- ``latency``: the median single-beat prediction takes at most ``registry.max_latency_ms``;
- ``floors``: its metrics on the gate set reach ``registry.floors[task]``;
- ``drift``: its training data is close to the champion's (:mod:`ecgops.registry.drift`);
- ``better``: the lower bound of the paired bootstrap interval of ``challenger - champion``
  on ``registry.select_metric`` is above ``registry.margin`` (passes when there is no
  champion yet, or the champion cannot be loaded any more).

The checks live in :mod:`ecgops.registry.checks`. The decision, both versions' gate-set
metrics and the intervals (``gate.challenger.{metric}_low/_high``, ``gate.champion...``,
``gate.difference.{metric}``, ``..._low/_high``, ``gate.bootstrap``) are recorded as ``gate.*``
tags on both versions, written to ``<outputs>/registry/{task}.json``
and returned. A refused or failed promotion changes no alias. Promotion moves
``previous_champion`` to the old champion, ``champion`` to the challenger and removes the
``challenger`` alias; the registered model's ``ecgops.champion_history`` tag lists the
champions in order, so :func:`rollback` can step back more than once.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgops.config import Config
from ecgops.errors import RegistryError
from ecgops.io import write_json
from ecgops.registry.checks import Check, Evaluation, eval_data_for, evaluate, run_checks
from ecgops.registry.client import (
    CHALLENGER,
    CHAMPION,
    CONTEXT,
    MORPHOLOGY,
    MULTILEAD,
    PREVIOUS_CHAMPION,
    alias_version,
    kind_task,
    mlflow_client,
    registered_model_name,
    registry_lock,
)
from ecgops.registry.gate import Comparison, compare
from ecgops.registry.register import BeatData

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

HISTORY_TAG = "ecgops.champion_history"


@dataclass
class Decision:
    """What the gate decided (or, with ``dry_run``, would decide).

    Attributes:
        task: ``ptb`` or ``mitbih``.
        model: registered model name.
        action: ``promoted``, ``would_promote`` (dry run), ``refused``, ``unchanged``
            (challenger already champion), ``no_challenger`` or ``rolled_back``.
        promoted: the challenger is now the champion.
        accepted: the challenger passed the gate.
        reason: one readable line.
        challenger: challenger version (None when there is none).
        champion: champion version before the decision.
        metric: the comparison metric.
        margin: the margin it had to beat.
        challenger_metrics: challenger's metrics on the evaluation data.
        champion_metrics: champion's metrics on the same data.
        checks: every check with its outcome.
        eval_data: description of the evaluation data.
        comparison: both scores and their difference with bootstrap intervals
            (:meth:`ecgops.registry.gate.Comparison.to_dict`; empty when nothing was compared).
        dry_run: nothing was changed.
        time: UTC time of the decision.
    """

    task: str
    model: str
    action: str
    promoted: bool = False
    accepted: bool = False
    reason: str = ""
    challenger: str | None = None
    champion: str | None = None
    metric: str = ""
    margin: float = 0.0
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    eval_data: str = ""
    comparison: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    def _score_lines(self) -> list[str]:
        """Both scores with their intervals and the difference's (or the plain metrics)."""
        c = self.comparison
        if not c:
            value = self.challenger_metrics.get(self.metric, float("nan"))
            return [f"  {self.metric} on {self.eval_data}: challenger {value:.4f}"]
        show = lambda i: f"{i['estimate']:.4f} [{i['low']:.4f}, {i['high']:.4f}]"  # noqa: E731
        lines = [
            f"  {self.metric} on {self.eval_data}, {c['level']:.0%} bootstrap intervals over "
            f"{c['groups']} patients/records ({c['resamples']} resamples):",
            f"    challenger (version {self.challenger}): {show(c['challenger'])}",
        ]
        if c.get("champion"):
            d = c["difference"]
            lines += [
                f"    champion   (version {self.champion}): {show(c['champion'])}",
                f"    difference (challenger - champion): {d['estimate']:+.4f} "
                f"[{d['low']:+.4f}, {d['high']:+.4f}]; better needs lower bound > margin "
                f"{self.margin}",
            ]
        else:
            lines.append("    champion: none")
        return lines

    def __str__(self) -> str:
        head = {
            "promoted": f"PROMOTED version {self.challenger} to champion",
            "would_promote": f"DRY RUN: would promote version {self.challenger} to champion",
            "refused": f"REFUSED version {self.challenger}",
            "unchanged": f"unchanged: version {self.challenger} is already the champion",
            "no_challenger": "nothing to decide: no challenger",
            "rolled_back": "ROLLED BACK",
        }.get(self.action, self.action)
        if self.dry_run and self.action == "refused":
            head = f"DRY RUN: would refuse version {self.challenger}"
        lines = [f"{self.model}: {head}", f"  reason: {self.reason}"]
        if self.challenger_metrics:
            lines += self._score_lines()
        for c in self.checks:
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
        return "\n".join(lines)


# ---- the gate ---------------------------------------------------------------------------------


def promote(
    cfg: Config,
    task: str,
    dry_run: bool = False,
    eval_data: BeatData | None = None,
    kind: str = MORPHOLOGY,
) -> Decision:
    """Run the promotion gate for a task.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        dry_run: decide and report, change nothing (no alias, tag or file).
        eval_data: evaluation beats (default: the task's sealed gate set).
        kind: ``morphology`` (``ecgops-{task}``) or ``context`` (``ecgops-{task}-context``,
            evaluated on the same beats with their RR context).

    Returns:
        The :class:`Decision` (also printed by the CLI).

    Raises:
        DataError: the evaluation data cannot be loaded.
        RegistryError: the registry lock could not be taken.
    """
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task, kind)
    if dry_run:
        return _decide(cfg, client, task, name, True, eval_data, kind)
    with registry_lock(cfg):
        return _decide(cfg, client, task, name, False, eval_data, kind)


def _decide(
    cfg: Config,
    client: MlflowClient,
    task: str,
    name: str,
    dry_run: bool,
    eval_data: BeatData | None,
    kind: str = MORPHOLOGY,
) -> Decision:
    metric = cfg.registry.select_metric
    challenger = alias_version(client, name, CHALLENGER)
    champion = alias_version(client, name, CHAMPION)
    decision = Decision(
        task=task,
        model=name,
        action="no_challenger",
        challenger=challenger.version if challenger else None,
        champion=champion.version if champion else None,
        metric=metric,
        margin=cfg.registry.margin,
        dry_run=dry_run,
    )
    if challenger is None:
        decision.reason = f"no version of {name} has the alias '{CHALLENGER}'; run ecgops register"
        if champion is not None:
            tags = champion.tags or {}
            value = tags.get(f"gate.challenger.{metric}")
            decision.reason += (
                f". The champion is version {champion.version} ({tags.get('run_name', '?')}"
                + (f", {metric} {float(value):.4f} when promoted" if value else "")
                + ")"
            )
        return decision
    if champion is not None and champion.version == challenger.version:
        decision.action = "unchanged"
        decision.reason = f"version {challenger.version} is already the champion"
        return decision

    leads = list(cfg.multilead.leads) if kind == MULTILEAD else None  # every lead of the table
    data_task = kind_task(task, kind)  # multilead: the ptb12 gate rows (same patients)
    x, y, groups, described = eval_data_for(
        cfg, data_task, eval_data, context=kind == CONTEXT, leads=leads
    )
    if len(x) == 0:
        raise RegistryError(f"{name}: the evaluation data is empty; cannot compare models")
    decision.eval_data = described
    with tempfile.TemporaryDirectory(prefix="ecgops-gate-") as tmp:
        ours = evaluate(cfg, task, challenger, (x, y), Path(tmp), leads)
        theirs = evaluate(cfg, task, champion, (x, y), Path(tmp), leads) if champion else None
        comparison = _compare(cfg, y, groups, ours, theirs)
        decision.checks = run_checks(cfg, task, ours, theirs, x, y, comparison, leads)
    decision.comparison = comparison.to_dict() if comparison else {}
    decision.challenger_metrics = ours.metrics
    decision.champion_metrics = theirs.metrics if theirs else {}
    failed = [c for c in decision.checks if not c.passed]
    decision.accepted = not failed
    if failed:
        decision.action = "refused"
        decision.reason = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    else:
        decision.action = "would_promote" if dry_run else "promoted"
        decision.reason = (
            f"passed every check; {metric} {ours.metrics.get(metric, float('nan')):.4f}"
            + (
                f" vs champion {theirs.metrics.get(metric, float('nan')):.4f}"
                if theirs
                else " (first champion)"
            )
        )
    if dry_run:
        return decision
    if decision.accepted:
        _move_aliases(client, name, challenger.version, champion.version if champion else None)
        decision.promoted = True
    _record(client, cfg, decision)
    if decision.promoted and kind == MORPHOLOGY:
        _write_card(cfg, task, challenger.version)
    return decision


def decision_file(cfg: Config, task: str, name: str) -> Path:
    """``<outputs>/registry/{task}.json``, ``{task}-context.json`` for the context model."""
    suffix = name[len(cfg.experiment_name(task)) :]
    return cfg.path("outputs") / "registry" / f"{task}{suffix}.json"


def _compare(
    cfg: Config, y: np.ndarray, groups: np.ndarray, ours: Evaluation, theirs: Evaluation | None
) -> Comparison | None:
    """Paired bootstrap comparison on the gate data (None when the challenger did not predict;
    without the champion's predictions only the challenger's interval)."""
    if ours.proba is None:
        return None
    champion = theirs.proba if theirs is not None else None
    return compare(
        y, groups, ours.proba, champion, cfg.registry.select_metric, cfg.registry.bootstrap
    )


def _move_aliases(client: MlflowClient, name: str, new: str, old: str | None) -> None:
    """previous_champion <- old champion, champion <- new, drop challenger; extend history."""
    history = champion_history(client, name)
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
        if not history or history[-1] != old:
            history.append(old)
    client.set_registered_model_alias(name, CHAMPION, new)
    history.append(new)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.delete_registered_model_alias(name, CHALLENGER)


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that were champion, oldest first (the ``ecgops.champion_history`` tag)."""
    tags = client.get_registered_model(name).tags or {}
    try:
        history = json.loads(tags.get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        history = []
    return [str(v) for v in history]


def _short(value: str, limit: int = 4900) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _record(client: MlflowClient, cfg: Config, decision: Decision) -> None:
    """Tags on both versions and ``<outputs>/registry/{task}.json``."""
    common = {
        "gate.time": decision.time,
        "gate.decision": decision.action,
        "gate.reason": _short(decision.reason),
        "gate.eval_data": decision.eval_data,
        "gate.challenger_version": str(decision.challenger),
        "gate.champion_version": str(decision.champion),
        "gate.checks": _short(
            json.dumps({c.name: {"passed": c.passed, "detail": c.detail} for c in decision.checks})
        ),
    }
    for key, value in decision.challenger_metrics.items():
        common[f"gate.challenger.{key}"] = f"{value:.6f}"
    for key, value in decision.champion_metrics.items():
        common[f"gate.champion.{key}"] = f"{value:.6f}"
    common.update(_interval_tags(decision))
    roles = [(decision.challenger, "challenger"), (decision.champion, "champion")]
    for version, role in roles:
        if version is None:
            continue
        for key, value in {**common, "gate.role": role}.items():
            client.set_model_version_tag(decision.model, version, key, value)
    write_json(decision.to_dict(), decision_file(cfg, decision.task, decision.model))


def _interval_tags(decision: Decision) -> dict[str, str]:
    """``gate.{role}.{metric}_low/_high``, ``gate.difference.{metric}[_low/_high]``,
    ``gate.bootstrap`` from the decision's comparison."""
    c = decision.comparison
    if not c:
        return {}
    metric = c["metric"]
    out = {
        "gate.bootstrap": json.dumps({k: c[k] for k in ("metric", "level", "resamples", "groups")}),
    }
    for role in ("challenger", "champion"):
        if c.get(role):
            out[f"gate.{role}.{metric}_low"] = f"{c[role]['low']:.6f}"
            out[f"gate.{role}.{metric}_high"] = f"{c[role]['high']:.6f}"
    if c.get("difference"):
        d = c["difference"]
        out[f"gate.difference.{metric}"] = f"{d['estimate']:.6f}"
        out[f"gate.difference.{metric}_low"] = f"{d['low']:.6f}"
        out[f"gate.difference.{metric}_high"] = f"{d['high']:.6f}"
    return out


def _write_card(cfg: Config, task: str, version: str) -> None:
    from ecgops.registry.model_card import write_model_card

    try:
        write_model_card(cfg, task, version)
    except Exception as exc:  # noqa: BLE001 - the promotion stands; the card can be rewritten
        log.warning("model card for %s version %s not written: %s", task, version, exc)


# ---- rollback ---------------------------------------------------------------------------------


def rollback(cfg: Config, task: str, kind: str = MORPHOLOGY) -> Decision:
    """Restore the previous champion.

    The current champion loses the alias (it keeps its versions and tags); ``champion`` points
    at the version before it in the champion history, ``previous_champion`` at the one before
    that (or is removed).

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.

    Returns:
        A :class:`Decision` with action ``rolled_back``.

    Raises:
        RegistryError: no champion, or no earlier champion to restore.
    """
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task, kind)
    with registry_lock(cfg):
        current = alias_version(client, name, CHAMPION)
        previous = alias_version(client, name, PREVIOUS_CHAMPION)
        if current is None:
            raise RegistryError(f"{name}: no champion; nothing to roll back")
        if previous is None:
            raise RegistryError(
                f"{name}: no previous champion to restore (version {current.version} is the first)"
            )
        history = champion_history(client, name)
        while history and history[-1] != current.version:
            history.pop()
        if history:
            history.pop()
        if not history or history[-1] != previous.version:
            history.append(previous.version)
        client.set_registered_model_alias(name, CHAMPION, previous.version)
        before = history[-2] if len(history) >= 2 else None
        if before is not None:
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before)
        else:
            client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        decision = Decision(
            task=task,
            model=name,
            action="rolled_back",
            promoted=False,
            accepted=True,
            champion=previous.version,
            challenger=None,
            metric=cfg.registry.select_metric,
            margin=cfg.registry.margin,
            reason=f"champion restored to version {previous.version} (was {current.version})",
        )
        stamp = decision.time
        client.set_model_version_tag(name, current.version, "gate.rolled_back_at", stamp)
        client.set_model_version_tag(name, previous.version, "gate.restored_at", stamp)
        write_json(decision.to_dict(), decision_file(cfg, task, name))
    if kind == MORPHOLOGY:
        _write_card(cfg, task, previous.version)
    return decision
