"""One place that turns predictions into the platform's evaluation outputs.

For a model x task x scheme it writes the metrics JSON (a DVC metrics file), the curve CSVs
(DVC plots), the PNG figures, and logs all of them to the active MLflow run.

Data roles: ``val`` figures are the model's own (uncalibrated) probabilities, the ones selection
reads; when a calibrator is given (fitted on those validation rows beforehand), ``test`` figures
are computed on the calibrated probabilities, the ones the registered model serves, and the
``calibration`` entry reports ECE and Brier score before and after on both parts (the ``val``
entry is in-sample, the ``test`` entry the honest one). MIT-BIH records also carry an ``aami``
entry (per part: per-class Se and +P of N, S, V, F, their mean Se, accuracy and the 5-class
figures; :func:`ecgops.evaluation.metrics.aami_metrics`), logged to MLflow as ``aami_{part}_*``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.evaluation import metrics as M
from ecgops.evaluation import plots as P
from ecgops.io import atomic_path, write_json

AAMI_TASK = "mitbih"
"""The task whose metrics records carry AAMI figures (its classes are the AAMI classes)."""


def metrics_path(cfg: Config, task: str, scheme: str, name: str) -> Path:
    """Path of the DVC metrics file of a model."""
    return cfg.path("outputs") / "metrics" / task / scheme / f"{name}.json"


def plots_dir(cfg: Config, task: str, scheme: str, name: str) -> Path:
    """Directory of the DVC plot CSVs of a model."""
    return cfg.path("outputs") / "plots" / task / scheme / name


def figures_dir(cfg: Config, task: str, scheme: str, name: str) -> Path:
    """Directory of the PNG figures of a model."""
    return cfg.path("outputs") / "figures" / task / scheme / name


def save_evaluation(
    cfg: Config,
    *,
    task: str,
    scheme: str,
    name: str,
    family: str,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    y_val: np.ndarray | None = None,
    proba_val: np.ndarray | None = None,
    timing: dict[str, float] | None = None,
    n: dict[str, int] | None = None,
    cv: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    calibrator: Any | None = None,
) -> dict[str, Any]:
    """Compute metrics and write every evaluation output of one model.

    Args:
        cfg: configuration.
        task, scheme, name, family: identify the model (see docs/architecture.md).
        y_test, proba_test: test labels and class probabilities (n, k).
        y_val, proba_val: validation labels and probabilities (model selection uses these).
        timing: fit/predict timings (seconds, beats/s).
        n: row counts per part.
        cv: grouped cross-validation summary (e.g. balanced_accuracy_mean/std).
        extra: any other JSON-able facts to record.
        calibrator: a calibrator fitted on ``y_val``/``proba_val`` (an
            :class:`ecgops.evaluation.calibration.Calibrator`); the test metrics, curves and
            figures are then computed on ``calibrator.transform(proba_test)``, and the record
            gets a ``calibration`` entry (see :func:`calibration_entry`).

    Returns:
        The metrics record that was written.
    """
    import mlflow

    from ecgops.tracking import data_version, git_commit

    class_names = cfg.class_names(task)
    n_bins = cfg.calibration.n_bins
    raw_test = np.asarray(proba_test, dtype=np.float64)
    if calibrator is not None:
        proba_test = calibrator.transform(raw_test)  # what the registered model serves
    record: dict[str, Any] = {
        "task": task,
        "scheme": scheme,
        "name": name,
        "family": family,
        "test": M.classification_metrics(y_test, proba_test),
        "timing": timing or {},
        "n": n or {"test": int(len(y_test))},
        "git_commit": git_commit(cfg.root),
        "data_version": data_version(cfg, task),
        "profile": cfg.profile,
    }
    record["test"]["ece"] = M.expected_calibration_error(y_test, proba_test, n_bins)
    has_val = y_val is not None and proba_val is not None and len(y_val) > 0
    if has_val:
        record["val"] = M.classification_metrics(y_val, proba_val)
    if cv:
        record["cv"] = cv
    if task == AAMI_TASK:
        record["aami"] = aami_entry(
            class_names, y_test, proba_test, *((y_val, proba_val) if has_val else ())
        )
    if extra:
        record.update(extra)
    active = mlflow.active_run()
    if active is not None:
        record["mlflow_run_id"] = active.info.run_id

    pdir = plots_dir(cfg, task, scheme, name)
    fdir = figures_dir(cfg, task, scheme, name)
    title = f"{task} / {scheme} split / {name}"
    cm = _write_test_plots(y_test, proba_test, class_names, n_bins, pdir, fdir, title)
    if calibrator is not None:
        parts = {"test": (y_test, raw_test)}
        if has_val:
            parts = {"val": (y_val, proba_val), **parts}
        record["calibration"] = calibration_entry(calibrator, parts, n_bins, pdir, fdir, title)
    record["confusion_matrix"] = cm.tolist()
    write_json(record, metrics_path(cfg, task, scheme, name))

    if active is not None:
        mlflow.log_metrics(_flat_metrics(record))
        mlflow.log_artifacts(str(fdir), artifact_path="figures")
        mlflow.log_artifacts(str(pdir), artifact_path="plots")
        mlflow.log_artifact(str(metrics_path(cfg, task, scheme, name)), artifact_path="metrics")
    return record


def _write_test_plots(
    y_test: np.ndarray,
    proba_test: np.ndarray,
    class_names: list[str],
    n_bins: int,
    pdir: Path,
    fdir: Path,
    title: str,
) -> np.ndarray:
    """The test part's curve CSVs (ROC, PR, confusion pairs) and figures; its confusion matrix.

    Args:
        y_test, proba_test: test labels and the probabilities the test metrics are on.
        class_names: the task's class names.
        n_bins: confidence bins of the reliability diagram.
        pdir: plots folder (``roc.csv``, ``pr.csv``, ``confusion.csv``).
        fdir: figures folder (``confusion.png``, ``roc.png``, ``pr.png``, ``calibration.png``).
        title: figure title suffix.

    Returns:
        The confusion matrix (counts, true x predicted).
    """
    cm = M.confusion(y_test, proba_test)
    roc_rows, pr_rows = M.curve_points(y_test, proba_test, class_names)
    _write_csv(pd.DataFrame(roc_rows, columns=["class", "fpr", "tpr"]), pdir / "roc.csv")
    _write_csv(pd.DataFrame(pr_rows, columns=["class", "recall", "precision"]), pdir / "pr.csv")
    _write_csv(_confusion_pairs(y_test, proba_test, class_names), pdir / "confusion.csv")
    P.plot_confusion(cm, class_names, f"Confusion: {title}", fdir / "confusion.png")
    P.plot_curves(roc_rows, "fpr", "tpr", f"ROC: {title}", fdir / "roc.png", diagonal=True)
    P.plot_curves(pr_rows, "recall", "precision", f"Precision-recall: {title}", fdir / "pr.png")
    P.plot_reliability(
        y_test, proba_test, f"Reliability: {title}", fdir / "calibration.png", n_bins
    )
    return cm


def aami_entry(
    class_names: list[str],
    y_test: np.ndarray,
    proba_test: np.ndarray,
    y_val: np.ndarray | None = None,
    proba_val: np.ndarray | None = None,
) -> dict[str, Any]:
    """The ``aami`` entry of a MIT-BIH metrics record: AAMI figures per part.

    Args:
        class_names: the task's class names (N, S, V, F, Q).
        y_test, proba_test: test labels and the probabilities the test metrics are on.
        y_val, proba_val: validation labels and probabilities (left out when None).

    Returns:
        ``{"test": ..., "val": ...}``, each :func:`ecgops.evaluation.metrics.aami_metrics`
        (Q beats left out of the 4-class figures, see there).
    """
    entry = {"test": M.aami_metrics(y_test, proba_test, class_names)}
    if y_val is not None and proba_val is not None:
        entry["val"] = M.aami_metrics(y_val, proba_val, class_names)
    return entry


def calibration_entry(
    calibrator: Any,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    n_bins: int,
    pdir: Path,
    fdir: Path,
    title: str,
) -> dict[str, Any]:
    """The ``calibration`` entry of a metrics record, with its CSV bins and before/after figure.

    Args:
        calibrator: fitted on the validation part beforehand (it only transforms here).
        parts: part name (``val``, ``test``) -> (labels, the model's uncalibrated probabilities).
        n_bins: confidence bins of the ECE and the reliability diagrams.
        pdir: plots folder: ``reliability.csv`` (part, stage, bin, confidence, accuracy, count).
        fdir: figures folder: ``calibration_before_after.png`` (test part).
        title: figure title suffix.

    Returns:
        ``method``, ``fitted`` (the calibrator's ``describe()``), ``skipped_reason`` and per
        part ``n``, ``ece_before``, ``ece_after``, ``brier_before``, ``brier_after``.
    """
    from ecgops.evaluation.calibration import calibration_record

    full = calibration_record(calibrator, parts, n_bins)
    entry: dict[str, Any] = {
        "method": full["method"],
        "fitted": full["fitted"],
        "skipped_reason": calibrator.skipped_reason,
    }
    bins = []
    for part in parts:
        if part not in full:
            continue
        report = full[part]
        entry[part] = {k: v for k, v in report.items() if not k.startswith("bins_")}
        for stage in ("before", "after"):
            bins += [{"part": part, "stage": stage, **b} for b in report[f"bins_{stage}"]]
    columns = ["part", "stage", "lo", "hi", "confidence", "accuracy", "count"]
    _write_csv(pd.DataFrame(bins, columns=columns), pdir / "reliability.csv")
    if "test" in full:
        P.plot_reliability_comparison(
            full["test"],
            f"Calibration ({entry['method']}), test: {title}",
            fdir / "calibration_before_after.png",
        )
    return entry


def _flat_metrics(record: dict[str, Any]) -> dict[str, float]:
    out = {}
    for part in ("test", "val", "cv", "timing"):
        for key, value in (record.get(part) or {}).items():
            if isinstance(value, int | float) and not math.isnan(float(value)):
                out[f"{part}_{key}"] = float(value)
    for part in ("val", "test"):
        for key, value in ((record.get("calibration") or {}).get(part) or {}).items():
            if isinstance(value, int | float) and not math.isnan(float(value)):
                out[f"calibration_{part}_{key}"] = float(value)
    for part, figures in (record.get("aami") or {}).items():
        out.update(M.aami_flat(figures, f"aami_{part}"))
    return out


def _confusion_pairs(y_true: np.ndarray, proba: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Actual/predicted name pairs, the format of DVC's confusion plot template."""
    pred = proba.argmax(axis=1)
    return pd.DataFrame(
        {"actual": [names[i] for i in y_true], "predicted": [names[i] for i in pred]}
    )


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def load_all_metrics(cfg: Config) -> list[dict[str, Any]]:
    """Every metrics record under outputs/metrics (for the report and model selection)."""
    import json

    root = cfg.path("outputs") / "metrics"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*/*.json"))]
