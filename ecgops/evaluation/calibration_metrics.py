"""Calibration metrics: Brier score, reliability bins and before/after reports per part.

Pure functions on labels and probabilities; :mod:`ecgops.evaluation.calibration` fits the
calibrators and re-exports these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ecgops.evaluation.metrics import expected_calibration_error

DEFAULT_N_BINS = 10
"""Default number of equal-width confidence bins (``calibration.n_bins`` wins)."""


def check_proba(
    proba: Any, n_classes: int | None = None, name: str = "probabilities"
) -> np.ndarray:
    """Check class probabilities.

    Args:
        proba: probabilities (n, k), k >= 2.
        n_classes: the number of columns required, if any.
        name: how to name the array in messages.

    Returns:
        ``proba`` as float64 (n, k).

    Raises:
        ValueError: wrong shape, NaN/inf, or values outside [0, 1].
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"{name}: expected shape (n, k) with k >= 2, got {p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name}: expected {n_classes} columns, got {p.shape[1]}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: NaN or infinite values")
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"{name}: values outside [0, 1] (pass logits with inputs='logits')")
    return p


def check_labels(y: Any, n_rows: int, n_classes: int) -> np.ndarray:
    """Check labels against probability rows.

    Args:
        y: labels (n,).
        n_rows: probability rows they belong to.
        n_classes: probability columns.

    Returns:
        int64 labels in ``0..n_classes-1``.

    Raises:
        ValueError: a different count than ``n_rows`` or a label outside the classes.
    """
    labels = np.asarray(y).astype(np.int64).ravel()
    if len(labels) != n_rows:
        raise ValueError(f"labels: {len(labels)} labels for {n_rows} probability rows")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels: values must lie in 0..{n_classes - 1}")
    return labels


def brier_score(y: Any, proba: Any) -> float:
    """Brier score: binary ``mean((p1 - y)^2)``; multiclass mean over rows of the summed
    squared error against the one-hot label.

    Args:
        y: labels (n,).
        proba: probabilities (n, k).

    Returns:
        The score (lower is better; NaN for no rows).
    """
    p = check_proba(proba)
    labels = check_labels(y, len(p), p.shape[1])
    if not len(labels):
        return float("nan")
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - labels) ** 2))
    onehot = np.eye(p.shape[1])[labels]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability_bins(y: Any, proba: Any, n_bins: int = DEFAULT_N_BINS) -> list[dict[str, Any]]:
    """Non-empty equal-width bins of top-class confidence (``(lo, hi]``, as the ECE uses).

    Args:
        y: labels (n,).
        proba: probabilities (n, k).
        n_bins: bins over [0, 1].

    Returns:
        Per non-empty bin: ``lo``, ``hi``, mean ``confidence``, ``accuracy`` and ``count``.
    """
    p = check_proba(proba)
    labels = check_labels(y, len(p), p.shape[1])
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            bins.append(
                {
                    "lo": float(lo),
                    "hi": float(hi),
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(correct[sel].mean()),
                    "count": int(sel.sum()),
                }
            )
    return bins


def calibration_report(
    y: Any, proba_before: Any, proba_after: Any, n_bins: int = DEFAULT_N_BINS
) -> dict[str, Any]:
    """ECE, Brier score and reliability bins of one part, before and after calibration.

    Args:
        y: labels of the part (n,).
        proba_before: the model's probabilities (n, k).
        proba_after: calibrated probabilities (n, k).
        n_bins: confidence bins.

    Returns:
        ``n``, ``ece_before``, ``ece_after``, ``brier_before``, ``brier_after``,
        ``bins_before``, ``bins_after``.
    """
    before = check_proba(proba_before, name="probabilities before calibration")
    after = check_proba(proba_after, before.shape[1], "probabilities after calibration")
    labels = check_labels(y, len(before), before.shape[1])
    if len(after) != len(before):
        raise ValueError(f"{len(before)} rows before calibration but {len(after)} after")
    nan = float("nan")
    return {
        "n": int(len(labels)),
        "ece_before": expected_calibration_error(labels, before, n_bins) if len(labels) else nan,
        "ece_after": expected_calibration_error(labels, after, n_bins) if len(labels) else nan,
        "brier_before": brier_score(labels, before),
        "brier_after": brier_score(labels, after),
        "bins_before": reliability_bins(labels, before, n_bins),
        "bins_after": reliability_bins(labels, after, n_bins),
    }


def calibration_record(
    calibrator: Any,
    parts: Mapping[str, tuple[Any, Any]],
    n_bins: int = DEFAULT_N_BINS,
) -> dict[str, Any]:
    """The metrics-file entry of a fitted calibrator: its facts and a report per part.

    The calibrator only *transforms* these parts; it was fitted on validation beforehand. The
    ``val`` report is in-sample (optimistic); the ``test`` report is the honest one.

    Args:
        calibrator: fitted on validation predictions (an
            :class:`ecgops.evaluation.calibration.Calibrator`).
        parts: part name (``val``, ``test``, ...) -> (labels, the model's probabilities).
        n_bins: confidence bins.

    Returns:
        ``method``, ``fitted`` (its ``describe()``) and one report per part.
    """
    record: dict[str, Any] = {"method": calibrator.method, "fitted": calibrator.describe()}
    for part, (y, proba) in parts.items():
        if len(y):
            after = calibrator.transform(proba)
            record[part] = calibration_report(y, np.asarray(proba), after, n_bins)
    return record
