"""The promotion gate's checks of a challenger (see :mod:`ecgops.registry.promote`).

Each check returns a :class:`Check`: its name, whether it passed and what was measured.
:func:`run_checks` runs them all on an :class:`Evaluation` of the challenger on the sealed
gate set (and of the champion, for ``better`` and ``drift``); ``floors`` apply to the
challenger's gate-set scores, ``better`` to the paired bootstrap comparison of
:mod:`ecgops.registry.gate`. :func:`eval_data_for` gives the gate data and :func:`evaluate`
scores a version on it.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.registry import drift
from ecgops.registry.gate import Comparison
from ecgops.registry.model import LoadedModel
from ecgops.registry.pyfunc import (
    CONTEXT_LAYOUT,
    INPUT_LAYOUT,
    METADATA_KEY,
    MULTILEAD_LAYOUT,
    beat_frame,
    model_signature,
    output_columns,
)
from ecgops.registry.register import BeatData, as_xy
from ecgops.schema import BEAT_LEN

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

PROBA_SUM_ATOL = 1e-3


@dataclass
class Check:
    """One gate check: its name, whether it passed, and what was measured."""

    name: str
    passed: bool
    detail: str


@dataclass
class Evaluation:
    """A version evaluated on the gate's data."""

    version: ModelVersion
    model: Any = None
    size_mb: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    proba: np.ndarray | None = None


def check_signature(model: Any, task: str, class_names: list[str]) -> Check:  # noqa: C901
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
    columns = list(info.get("context_columns") or [])
    layout = CONTEXT_LAYOUT if columns else INPUT_LAYOUT
    if info.get("leads"):
        layout = MULTILEAD_LAYOUT
    if info.get("input_layout") != layout:
        problems.append(f"input layout {info.get('input_layout')!r} is not {layout}")
    declared = sig.inputs.input_names() if sig is not None and sig.inputs is not None else []
    if columns and not set(columns) <= set(declared):
        problems.append(f"context columns {columns} are not all signature inputs")
    if problems:
        return Check("signature", False, "; ".join(problems))
    return Check("signature", True, f"outputs {', '.join(output_columns(len(class_names)))}")


def check_smoke(  # noqa: C901
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    class_names: list[str],
    leads: list[str] | None = None,
) -> Check:
    """A prediction on a few beats, in both input layouts, gives valid rows; NaN is refused.

    ``leads``: multi-lead rows ``x`` (these leads side by side), named columns only.
    """
    from mlflow.exceptions import MlflowException

    k = len(class_names)
    context = bool((model.metadata.metadata or {}).get(METADATA_KEY, {}).get("context_columns"))
    try:
        named = model.predict(beat_frame(x, leads))  # x: beats (+ context for a context model)
        unnamed = (
            None
            if context or leads
            else model.predict(pd.DataFrame(np.c_[x.astype(np.float64), y]))
        )
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
        if unnamed is not None and not named.equals(unnamed):
            problems.append("named and unnamed (188-column) input give different outputs")
    if context:
        try:
            model.predict(beat_frame(x[:, :BEAT_LEN]))
            problems.append("rows without RR context (the Kaggle layout) were accepted")
        except (MlflowException, ValueError):
            pass
    bad = x[:1].astype(np.float64).copy()
    bad[0, :] = np.nan
    try:
        model.predict(beat_frame(bad, leads) if leads else bad)
        problems.append("a NaN input was accepted")
    except (MlflowException, ValueError):
        pass
    if problems:
        return Check("smoke", False, "; ".join(problems))
    return Check("smoke", True, f"{len(x)} beats predicted; NaN input refused")


def check_latency(
    model: Any, beat: np.ndarray, repeats: int, limit_ms: float, leads: list[str] | None = None
) -> Check:
    """Median wall time of a single-beat prediction (after one warm-up call)."""
    one = beat_frame(beat[None, :], leads)
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
    margin: float, champion: Evaluation | None, comparison: Comparison | None
) -> Check:
    """The challenger beats the champion beyond noise: the paired bootstrap difference's lower
    bound (challenger - champion, same resamples of the gate's patients / records) is above
    the margin (:mod:`ecgops.registry.gate`)."""
    if champion is None:
        return Check("better", True, "no champion yet")
    if champion.error:
        return Check("better", True, f"champion cannot be evaluated ({champion.error})")
    if comparison is None or comparison.difference is None or comparison.champion is None:
        return Check("better", False, "no paired comparison of the two models")
    diff = comparison.difference
    ok = bool(diff.low > margin)
    return Check(
        "better",
        ok,
        f"{comparison.metric} {comparison.challenger} vs champion {comparison.champion}: "
        f"difference {diff.estimate:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}], lower bound "
        f"{'>' if ok else '<='} margin {margin} ({comparison.describe()})",
    )


def run_checks(
    cfg: Config,
    task: str,
    challenger: Evaluation,
    champion: Evaluation | None,
    x: np.ndarray,
    y: np.ndarray,
    comparison: Comparison | None = None,
    leads: list[str] | None = None,
) -> list[Check]:
    """All gate checks of the challenger (see the module docstring).

    Args:
        cfg: configuration (``registry``).
        task: ``ptb`` or ``mitbih``.
        challenger: the challenger evaluated on the gate data.
        champion: the champion evaluated on the same data (None without one).
        x: the gate data's beats (smoke and latency checks).
        y: their labels.
        comparison: both scores with paired bootstrap intervals (``better``).
        leads: multi-lead gate data: the leads side by side in ``x``.

    Returns:
        The checks in order; only ``load`` when the challenger did not load.
    """
    reg = cfg.registry
    names = cfg.class_names(task)
    if challenger.error or challenger.model is None:
        return [Check("load", False, challenger.error or "not loaded")]
    model = challenger.model
    n = min(reg.smoke_beats, len(x))
    return [
        Check("load", True, f"loaded version {challenger.version.version}"),
        check_signature(model, task, names),
        check_smoke(model, x[:n], y[:n], names, leads),
        Check(
            "size",
            challenger.size_mb <= reg.max_model_mb,
            f"{challenger.size_mb:.2f} MB (limit {reg.max_model_mb} MB)",
        ),
        check_latency(model, x[0], reg.latency_repeats, reg.max_latency_ms, leads),
        check_floors(challenger.metrics, reg.floors.get(task, {})),
        check_drift(
            challenger.version, champion.version if champion else None, reg.drift_threshold
        ),
        check_better(reg.margin, champion, comparison),
    ]


# ---- evaluation on the gate data -----------------------------------------------------------------


def eval_data_for(
    cfg: Config,
    task: str,
    eval_data: BeatData | None,
    context: bool = False,
    leads: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The gate's evaluation beats: given, or the task's sealed gate set.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        eval_data: explicit evaluation beats (win); a beat table's patients / records are the
            bootstrap's groups, ``(x, y)`` arrays resample single beats.
        context: the beats with their RR context (``register.as_xy(..., context=True)``),
            for the context model.
        leads: multi-lead beats: ``task`` is then the multi-lead table (``ptb12``) and ``x``
            these leads side by side (a multi-lead model picks its own by name).

    Returns:
        ``(x, y, groups, description)``.

    Raises:
        DataError: the split or table is missing or stale, or the split has no gate rows.
    """
    from ecgops.data.gate_set import group_column

    column = group_column(task)
    if eval_data is not None:
        x, y = as_xy(eval_data, context, leads)
        given = isinstance(eval_data, pd.DataFrame) and column in eval_data
        groups = eval_data[column].astype(str).to_numpy() if given else np.arange(len(x))
        return x, y, groups, f"given evaluation data ({len(x)} beats)"
    from ecgops.data.splits import load_gate
    from ecgops.tracking import data_version

    gate = load_gate(cfg, task)
    x, y = as_xy(gate, context, leads)
    groups = gate[column].astype(str).to_numpy()
    return (
        x,
        y,
        groups,
        (
            f"{task} sealed gate set ({len(x)} beats, {len(set(groups))} {column}s, "
            f"data {data_version(cfg, task)[:8]})"
        ),
    )


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


def evaluate(
    cfg: Config,
    task: str,
    version: ModelVersion,
    data: tuple[np.ndarray, np.ndarray],
    workdir: Path,
    leads: list[str] | None = None,
) -> Evaluation:
    """Load a version and compute its metrics on ``data``; errors are recorded, not raised.

    Args:
        cfg: configuration (the task's classes, ``serving.batch_chunk_size``).
        task: ``ptb`` or ``mitbih``.
        version: the registered version.
        data: ``(x, y)`` evaluation beats and labels.
        workdir: where its artifacts are downloaded.
        leads: multi-lead rows: the leads side by side in ``x``.

    Returns:
        The evaluation (``error`` set when loading or predicting failed).
    """
    from ecgops.evaluation.metrics import classification_metrics

    x, y = data
    ev = Evaluation(version)
    try:
        ev.model, ev.size_mb = load_version(version.name, version.version, workdir)
        model = LoadedModel.of(
            ev.model, cfg.serving.batch_chunk_size, class_names=cfg.class_names(task),
            input_leads=leads,
        )  # fmt: skip
        proba = model.predict_proba(x)
        ev.proba = proba
        ev.metrics = {k: round(v, 6) for k, v in classification_metrics(y, proba).items()}
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate model is a failed check
        ev.error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "%s version %s could not be evaluated: %s", version.name, version.version, ev.error
        )
    return ev
