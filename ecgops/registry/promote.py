"""Promotion gate: the ``challenger`` becomes ``champion`` only if it is better and passes checks.

Both versions are evaluated on the **same held-out data**: the test part of ``splits.scheme``
(or data given explicitly). The challenger must pass every check:

- ``load``: the version's artifacts download and load as a pyfunc model;
- ``signature``: the output signature is ``pred, pred_name, p_0..p_{k-1}`` for the task's
  classes and the model metadata declares the task, its class names and the Kaggle input;
- ``smoke``: a prediction on ``registry.smoke_beats`` evaluation beats returns one valid row
  per beat (probabilities in [0, 1] summing to 1, names matching classes), the same for the
  named and the unnamed 188-column layout, and a NaN row is refused;
- ``size``: the model's artifacts weigh at most ``registry.max_model_mb``;
- ``latency``: the median single-beat prediction takes at most ``registry.max_latency_ms``;
- ``floors``: its metrics on the evaluation data reach ``registry.floors[task]``;
- ``drift``: its training data is close to the champion's (:mod:`ecgops.registry.drift`);
- ``better``: ``challenger - champion > registry.margin`` on ``registry.select_metric``
  (passes when there is no champion yet, or the champion cannot be loaded any more).

The decision and both versions' metrics are recorded as ``gate.*`` tags on both versions,
written to ``<outputs>/registry/{task}.json`` and returned. A refused or failed promotion
changes no alias. Promotion moves ``previous_champion`` to the old champion, ``champion`` to
the challenger and removes the ``challenger`` alias; the registered model's
``ecgops.champion_history`` tag lists the champions in order, so :func:`rollback` can step back
more than once.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import RegistryError
from ecgops.io import write_json
from ecgops.registry import drift
from ecgops.registry.pyfunc import METADATA_KEY, beat_frame, model_signature, output_columns
from ecgops.registry.register import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    BeatData,
    alias_version,
    as_xy,
    mlflow_client,
    registered_model_name,
    registry_lock,
)
from ecgops.schema import SIGNAL_COLUMNS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

HISTORY_TAG = "ecgops.champion_history"
PREDICT_BATCH = 10_000
PROBA_SUM_ATOL = 1e-3


@dataclass
class Check:
    """One gate check: its name, whether it passed, and what was measured."""

    name: str
    passed: bool
    detail: str


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
    dry_run: bool = False
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

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
            champ = self.champion_metrics.get(self.metric)
            lines.append(
                f"  {self.metric} on {self.eval_data}: challenger "
                f"{self.challenger_metrics.get(self.metric, float('nan')):.4f}, champion "
                + (f"{champ:.4f} (version {self.champion})" if champ is not None else "none")
                + f", margin {self.margin}"
            )
        for c in self.checks:
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
        return "\n".join(lines)


@dataclass
class Evaluation:
    """A version evaluated on the gate's data."""

    version: ModelVersion
    model: Any = None
    size_mb: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


# ---- evaluation -------------------------------------------------------------------------------


def eval_data_for(
    cfg: Config, task: str, eval_data: BeatData | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The gate's evaluation beats: given, or the test part of ``splits.scheme``.

    Raises:
        DataError: the split or table is missing or stale.
    """
    if eval_data is not None:
        x, y = as_xy(eval_data)
        return x, y, f"given evaluation data ({len(x)} beats)"
    from ecgops.data.splits import load_split
    from ecgops.tracking import data_version

    scheme = cfg.splits.scheme
    x, y = as_xy(load_split(cfg, task, scheme)["test"])
    return x, y, f"{task}/{scheme} test part ({len(x)} beats, data {data_version(cfg, task)[:8]})"


def load_version(name: str, version: str, workdir: Path) -> tuple[Any, float]:
    """Download a version's artifacts, measure their size and load the pyfunc model.

    Returns:
        ``(model, size_mb)``.
    """
    import mlflow.artifacts
    import mlflow.pyfunc

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dst = workdir / f"v{version}"
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)
        )
    )
    size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    return mlflow.pyfunc.load_model(str(local)), size / 1e6


def predict_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of a loaded pyfunc model, predicted in batches."""
    cols = [f"p_{j}" for j in range(n_classes)]
    parts = [
        model.predict(beat_frame(x[i : i + PREDICT_BATCH]))[cols].to_numpy(np.float64)
        for i in range(0, len(x), PREDICT_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, n_classes))


def evaluate(
    name: str, version: ModelVersion, x: np.ndarray, y: np.ndarray, n_classes: int, workdir: Path
) -> Evaluation:
    """Load a version and compute its metrics on ``(x, y)``; errors are recorded, not raised."""
    from ecgops.evaluation.metrics import classification_metrics

    ev = Evaluation(version)
    try:
        ev.model, ev.size_mb = load_version(name, version.version, workdir)
        proba = predict_proba(ev.model, x, n_classes)
        ev.metrics = {k: round(v, 6) for k, v in classification_metrics(y, proba).items()}
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate model is a failed check
        ev.error = f"{type(exc).__name__}: {exc}"
        log.warning("%s version %s could not be evaluated: %s", name, version.version, ev.error)
    return ev


# ---- checks -----------------------------------------------------------------------------------


def check_signature(model: Any, task: str, class_names: list[str]) -> Check:
    """Output signature and ecgops metadata match the task."""
    meta = model.metadata
    expected = model_signature(len(class_names)).outputs.to_dict()
    sig = meta.signature
    problems = []
    if sig is None or sig.outputs is None:
        problems.append("no output signature")
    elif sig.outputs.to_dict() != expected:
        got = [c.get("name") for c in sig.outputs.to_dict()]
        problems.append(f"outputs {got} != {output_columns(len(class_names))}")
    info = (meta.metadata or {}).get(METADATA_KEY, {})
    if info.get("task") != task:
        problems.append(f"model is for task {info.get('task')!r}, not {task!r}")
    if info.get("class_names") != class_names:
        problems.append(f"classes {info.get('class_names')} != {class_names}")
    if info.get("input_layout") != "kaggle-187":
        problems.append(f"input layout {info.get('input_layout')!r} is not kaggle-187")
    if problems:
        return Check("signature", False, "; ".join(problems))
    return Check("signature", True, f"outputs {', '.join(output_columns(len(class_names)))}")


def check_smoke(model: Any, x: np.ndarray, y: np.ndarray, class_names: list[str]) -> Check:
    """A prediction on a few beats, in both input layouts, gives valid rows; NaN is refused."""
    from mlflow.exceptions import MlflowException

    k = len(class_names)
    try:
        named = model.predict(pd.DataFrame(x.astype(np.float64), columns=SIGNAL_COLUMNS))
        unnamed = model.predict(pd.DataFrame(np.c_[x.astype(np.float64), y]))
    except Exception as exc:  # noqa: BLE001
        return Check("smoke", False, f"prediction failed: {type(exc).__name__}: {exc}")
    problems = []
    if list(named.columns) != output_columns(k):
        problems.append(f"columns {list(named.columns)}")
    if len(named) != len(x):
        problems.append(f"{len(named)} rows for {len(x)} beats")
    if not problems:
        p = named[[f"p_{j}" for j in range(k)]].to_numpy(np.float64)
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            problems.append("probabilities outside [0, 1]")
        elif not np.allclose(p.sum(axis=1), 1.0, atol=PROBA_SUM_ATOL):
            problems.append("probabilities do not sum to 1")
        if (named["pred"].to_numpy() != p.argmax(axis=1)).any():
            problems.append("pred is not the most probable class")
        if list(named["pred_name"]) != [class_names[i] for i in named["pred"]]:
            problems.append("pred_name does not match pred")
        if not named.equals(unnamed):
            problems.append("named and unnamed (188-column) input give different outputs")
    bad = x[:1].astype(np.float64).copy()
    bad[0, 0] = np.nan
    try:
        model.predict(bad)
        problems.append("a NaN input was accepted")
    except (MlflowException, ValueError):
        pass
    if problems:
        return Check("smoke", False, "; ".join(problems))
    return Check("smoke", True, f"{len(x)} beats predicted; NaN input refused")


def check_latency(model: Any, beat: np.ndarray, repeats: int, limit_ms: float) -> Check:
    """Median wall time of a single-beat prediction (after one warm-up call)."""
    one = beat_frame(beat[None, :])
    model.predict(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(one)
        times.append((time.perf_counter() - start) * 1000.0)
    median = statistics.median(times)
    return Check(
        "latency",
        median <= limit_ms,
        f"median {median:.2f} ms over {repeats} single-beat calls (limit {limit_ms} ms)",
    )


def check_floors(metrics: dict[str, float], floors: dict[str, float]) -> Check:
    """Every floored metric reaches its floor."""
    low = [
        f"{k} {metrics.get(k, float('nan')):.4f} < {v}"
        for k, v in floors.items()
        if not metrics.get(k, float("nan")) >= v
    ]
    if low:
        return Check("floors", False, "; ".join(low))
    return Check("floors", True, ", ".join(f"{k} >= {v}" for k, v in floors.items()) or "none set")


def check_drift(challenger: ModelVersion, champion: ModelVersion | None, threshold: float) -> Check:
    """Training data of the challenger vs the champion's (PSI, see :mod:`drift`)."""
    if champion is None:
        return Check("drift", True, "no champion to compare with")
    ours = drift.from_tag(challenger.tags.get(drift.STATS_TAG))
    if ours is None:
        status = challenger.tags.get("ecgops.train_stats_status", "not recorded")
        return Check(
            "drift",
            False,
            f"no training statistics on version {challenger.version} ({status}); "
            "re-register it with its training data present",
        )
    theirs = drift.from_tag(champion.tags.get(drift.STATS_TAG))
    if theirs is None:
        return Check("drift", True, f"champion version {champion.version} has no statistics")
    report = drift.compare(theirs, ours, threshold)
    return Check("drift", report.passed, report.message)


def check_better(
    metric: str, margin: float, challenger: Evaluation, champion: Evaluation | None
) -> Check:
    """The challenger beats the champion by more than the margin on the same data."""
    if champion is None:
        return Check("better", True, "no champion yet")
    if champion.error:
        return Check("better", True, f"champion cannot be evaluated ({champion.error})")
    ours = challenger.metrics.get(metric, float("nan"))
    theirs = champion.metrics.get(metric, float("nan"))
    delta = ours - theirs
    ok = bool(delta > margin)
    return Check(
        "better",
        ok,
        f"{metric} {ours:.4f} vs champion {theirs:.4f}: difference {delta:+.4f} "
        f"{'>' if ok else '<='} margin {margin}",
    )


def run_checks(
    cfg: Config,
    task: str,
    challenger: Evaluation,
    champion: Evaluation | None,
    x: np.ndarray,
    y: np.ndarray,
) -> list[Check]:
    """All gate checks of the challenger (see the module docstring)."""
    reg = cfg.registry
    names = cfg.class_names(task)
    metric = reg.select_metric
    if challenger.error or challenger.model is None:
        return [Check("load", False, challenger.error or "not loaded")]
    model = challenger.model
    n = min(reg.smoke_beats, len(x))
    return [
        Check("load", True, f"loaded version {challenger.version.version}"),
        check_signature(model, task, names),
        check_smoke(model, x[:n], y[:n], names),
        Check(
            "size",
            challenger.size_mb <= reg.max_model_mb,
            f"{challenger.size_mb:.2f} MB (limit {reg.max_model_mb} MB)",
        ),
        check_latency(model, x[0], reg.latency_repeats, reg.max_latency_ms),
        check_floors(challenger.metrics, reg.floors.get(task, {})),
        check_drift(
            challenger.version, champion.version if champion else None, reg.drift_threshold
        ),
        check_better(metric, reg.margin, challenger, champion),
    ]


# ---- the gate ---------------------------------------------------------------------------------


def promote(
    cfg: Config, task: str, dry_run: bool = False, eval_data: BeatData | None = None
) -> Decision:
    """Run the promotion gate for a task.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        dry_run: decide and report, change nothing (no alias, tag or file).
        eval_data: evaluation beats (default: the test part of ``splits.scheme``).

    Returns:
        The :class:`Decision` (also printed by the CLI).

    Raises:
        DataError: the evaluation data cannot be loaded.
        RegistryError: the registry lock could not be taken.
    """
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    if dry_run:
        return _decide(cfg, client, task, name, True, eval_data)
    with registry_lock(cfg):
        return _decide(cfg, client, task, name, False, eval_data)


def _decide(
    cfg: Config,
    client: MlflowClient,
    task: str,
    name: str,
    dry_run: bool,
    eval_data: BeatData | None,
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

    x, y, described = eval_data_for(cfg, task, eval_data)
    if len(x) == 0:
        raise RegistryError(f"{name}: the evaluation data is empty; cannot compare models")
    decision.eval_data = described
    k = len(cfg.class_names(task))
    with tempfile.TemporaryDirectory(prefix="ecgops-gate-") as tmp:
        ours = evaluate(name, challenger, x, y, k, Path(tmp))
        theirs = evaluate(name, champion, x, y, k, Path(tmp)) if champion else None
        decision.checks = run_checks(cfg, task, ours, theirs, x, y)
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
    if decision.promoted:
        _write_card(cfg, task, challenger.version)
    return decision


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
    roles = [(decision.challenger, "challenger"), (decision.champion, "champion")]
    for version, role in roles:
        if version is None:
            continue
        for key, value in {**common, "gate.role": role}.items():
            client.set_model_version_tag(decision.model, version, key, value)
    write_json(decision.to_dict(), cfg.path("outputs") / "registry" / f"{decision.task}.json")


def _write_card(cfg: Config, task: str, version: str) -> None:
    from ecgops.registry.model_card import write_model_card

    try:
        write_model_card(cfg, task, version)
    except Exception as exc:  # noqa: BLE001 - the promotion stands; the card can be rewritten
        log.warning("model card for %s version %s not written: %s", task, version, exc)


# ---- rollback ---------------------------------------------------------------------------------


def rollback(cfg: Config, task: str) -> Decision:
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
    name = registered_model_name(cfg, task)
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
        write_json(decision.to_dict(), cfg.path("outputs") / "registry" / f"{task}.json")
    _write_card(cfg, task, previous.version)
    return decision
