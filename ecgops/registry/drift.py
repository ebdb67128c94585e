"""Data drift guard: compare the training data of a challenger with the champion's.

Each registered version carries *reference statistics* of the beats it was trained on (a
version tag, see :data:`STATS_TAG`): fixed-bin histograms of three per-beat summaries and the
class balance. Fixed bins (same edges for every version) make two versions comparable from
their tags alone, without the data.

- ``mean``: mean of the beat's 187 values, bins over [0, 1];
- ``std``: standard deviation of the 187 values, bins over [0, 0.5] (the most a [0, 1] signal
  can have);
- ``length``: true length before the zero padding, bins over [1, 187] samples;
- ``class_balance``: share of each class.

The statistic is the **population stability index** per component,
``PSI = sum_i (p_i - q_i) * ln(p_i / q_i)`` over the bins (shares floored at
:data:`PSI_FLOOR` so empty bins stay finite). PSI is symmetric in the two distributions and
conventionally read as < 0.1 stable, 0.1 - 0.25 moderate shift, > 0.25 major shift. A
promotion is refused when the largest PSI exceeds ``registry.drift_threshold``. PSI is noisy
on small samples (a few hundred beats per side is the least for 10 bins).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgops.schema import BEAT_LEN, true_lengths

STATS_TAG = "ecgops.train_stats"
"""Model version tag holding the reference statistics (compact JSON)."""
STATS_VERSION = 1
PSI_FLOOR = 1e-4
"""Smallest share used in the PSI (an empty bin would make it infinite)."""
RANGES: dict[str, tuple[float, float]] = {
    "mean": (0.0, 1.0),
    "std": (0.0, 0.5),
    "length": (1.0, float(BEAT_LEN)),
}


def beat_summaries(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-beat mean, standard deviation and true length (without the zero padding).

    Args:
        x: beats, shape (n, 187).

    Returns:
        ``{"mean": (n,), "std": (n,), "length": (n,)}``.
    """
    x = np.asarray(x, dtype=np.float64)
    return {
        "mean": x.mean(axis=1),
        "std": x.std(axis=1),
        "length": true_lengths(x).astype(np.float64),
    }


def reference_stats(x: np.ndarray, y: np.ndarray, n_classes: int, bins: int) -> dict[str, Any]:
    """Reference statistics of a training set (JSON-ready).

    Args:
        x: training beats (n, 187).
        y: training labels (n,).
        n_classes: number of classes of the task.
        bins: histogram bins per summary.

    Returns:
        ``{"version", "n", "bins", "hist": {name: shares}, "ranges", "class_balance",
        "means": {name: mean}}``.
    """
    if len(x) == 0:
        raise ValueError("no training beats to summarise")
    summaries = beat_summaries(x)
    hist = {}
    for name, values in summaries.items():
        lo, hi = RANGES[name]
        counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
        hist[name] = _round(counts / counts.sum())
    balance = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)[:n_classes]
    return {
        "version": STATS_VERSION,
        "n": int(len(x)),
        "bins": int(bins),
        "ranges": {k: list(v) for k, v in RANGES.items()},
        "hist": hist,
        "class_balance": _round(balance / max(balance.sum(), 1)),
        "means": {k: round(float(v.mean()), 6) for k, v in summaries.items()},
    }


def _round(a: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in a]


def psi(p: list[float] | np.ndarray, q: list[float] | np.ndarray) -> float:
    """Population stability index of two discrete distributions over the same bins.

    Args:
        p: shares of the reference (sum 1).
        q: shares of the comparison (sum 1).

    Returns:
        ``sum (p - q) ln(p / q)`` with shares floored at :data:`PSI_FLOOR` (0 when equal).
    """
    a = np.maximum(np.asarray(p, dtype=np.float64), PSI_FLOOR)
    b = np.maximum(np.asarray(q, dtype=np.float64), PSI_FLOOR)
    if a.shape != b.shape:
        raise ValueError(f"distributions over different bins: {a.shape} vs {b.shape}")
    return float(np.sum((a - b) * np.log(a / b)))


@dataclass
class DriftReport:
    """Outcome of the drift guard.

    Attributes:
        passed: True when every component's PSI is within the threshold.
        psi: PSI per component (``mean``, ``std``, ``length``, ``class_balance``).
        threshold: the threshold used.
        message: one readable line.
    """

    passed: bool
    psi: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.0
    message: str = ""


def compare(reference: dict[str, Any], current: dict[str, Any], threshold: float) -> DriftReport:
    """Compare two sets of reference statistics with the PSI.

    Args:
        reference: the champion's training statistics.
        current: the challenger's training statistics.
        threshold: largest PSI allowed per component.

    Returns:
        The :class:`DriftReport`; incomparable statistics (other bins or classes) fail.
    """
    if reference.get("bins") != current.get("bins") or reference.get("ranges") != current.get(
        "ranges"
    ):
        return DriftReport(
            False,
            threshold=threshold,
            message="training statistics were made with different bins; cannot compare "
            "(re-register both versions with the same registry.drift_bins)",
        )
    values = {
        name: psi(reference["hist"][name], current["hist"][name]) for name in reference["hist"]
    }
    if len(reference["class_balance"]) != len(current["class_balance"]):
        return DriftReport(False, values, threshold, "the versions have different classes")
    values["class_balance"] = psi(reference["class_balance"], current["class_balance"])
    values = {k: round(v, 4) for k, v in values.items()}
    worst = max(values, key=lambda k: values[k])
    if values[worst] > threshold or not all(math.isfinite(v) for v in values.values()):
        return DriftReport(
            False,
            values,
            threshold,
            f"training data drifted from the champion's: PSI of {worst} is {values[worst]:.3f} "
            f"> drift_threshold {threshold} (all: "
            + ", ".join(f"{k} {v:.3f}" for k, v in values.items())
            + ")",
        )
    return DriftReport(
        True,
        values,
        threshold,
        f"largest PSI {values[worst]:.3f} ({worst}) <= drift_threshold {threshold}",
    )


def to_tag(stats: dict[str, Any]) -> str:
    """Compact JSON for a model version tag."""
    return json.dumps(stats, separators=(",", ":"), sort_keys=True)


def from_tag(value: str | None) -> dict[str, Any] | None:
    """Parse the tag written by :func:`to_tag` (None when absent or unreadable)."""
    if not value:
        return None
    try:
        stats = json.loads(value)
    except json.JSONDecodeError:
        return None
    return stats if isinstance(stats, dict) and "hist" in stats else None
