"""Bootstrap intervals of the promotion gate: resample patients (PTB) or records (MIT-BIH).

The gate set's beats are not independent (a patient contributes many similar beats), so the
uncertainty of a score is estimated by resampling whole groups with replacement
(``registry.bootstrap.n`` resamples, seed ``registry.bootstrap.seed``): each resample draws as
many groups as the gate set has, and a score is computed on the beats of the drawn groups
(a group drawn twice counts twice). The interval is the percentile interval at level
``1 - registry.bootstrap.alpha``. Champion and challenger are scored on the **same** resamples,
so the interval of their difference (challenger - champion) is paired; the gate's ``better``
check passes only when its lower bound is above ``registry.margin``.

Metrics of the arg-max prediction (``accuracy``, ``balanced_accuracy``, ``macro_f1``) are
computed from per-group confusion matrices (a resample's matrix is the weighted sum of its
groups'), so a thousand resamples cost milliseconds; the probability metrics (``auroc``,
``auprc``) are recomputed on each resample's beats. With a single group every interval is the
point estimate: the data cannot say more.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ecgops.config import BootstrapConfig

CONFUSION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass(frozen=True)
class Interval:
    """A score with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class Comparison:
    """Both models' scores on the gate data and their paired difference.

    Attributes:
        metric: the compared metric.
        level: confidence level (``1 - alpha``).
        resamples: bootstrap resamples.
        groups: patients / records resampled.
        challenger: the challenger's score.
        champion: the champion's score (None without a champion).
        difference: challenger - champion (None without a champion).
    """

    metric: str
    level: float
    resamples: int
    groups: int
    challenger: Interval
    champion: Interval | None = None
    difference: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    def describe(self) -> str:
        """The interval's provenance in words, e.g. ``95 % bootstrap over 3 groups (1000 x)``."""
        return (
            f"{self.level:.0%} bootstrap intervals over {self.groups} patients/records "
            f"({self.resamples} resamples)"
        )


def metric_from_confusion(cm: np.ndarray, metric: str) -> float:
    """An arg-max metric from a confusion matrix (rows true, columns predicted).

    Matches :func:`ecgops.evaluation.metrics.classification_metrics`: balanced accuracy is the
    mean recall over the classes present in the truth, macro F1 the mean over the classes
    present in the truth or the prediction (``zero_division=0``).

    Args:
        cm: (k, k) counts.
        metric: one of :data:`CONFUSION_METRICS`.

    Returns:
        The metric (NaN on an empty matrix).
    """
    total = cm.sum()
    if total == 0:
        return float("nan")
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    if metric == "accuracy":
        return float(tp.sum() / total)
    if metric == "balanced_accuracy":
        present = support > 0
        return float(np.mean(tp[present] / support[present]))
    seen = (support + predicted) > 0
    return float(np.mean(2 * tp[seen] / (support[seen] + predicted[seen])))


def _confusions(y: np.ndarray, proba: np.ndarray, group_ids: np.ndarray, n_groups: int):
    """Per-group confusion matrices, shape (n_groups, k, k)."""
    k = proba.shape[1]
    out = np.zeros((n_groups, k, k), dtype=np.int64)
    np.add.at(out, (group_ids, y, proba.argmax(axis=1)), 1)
    return out


def _scores(
    y: np.ndarray, proba: np.ndarray, group_ids: np.ndarray, weights: np.ndarray, metric: str
) -> np.ndarray:
    """The metric on every resample (``weights``: (resamples, groups) draw counts)."""
    if metric in CONFUSION_METRICS:
        per_group = _confusions(y, proba, group_ids, weights.shape[1])
        resampled = np.einsum("bg,gij->bij", weights, per_group)
        return np.array([metric_from_confusion(cm, metric) for cm in resampled])
    score = _row_metric(metric)
    members = [np.flatnonzero(group_ids == g) for g in range(weights.shape[1])]
    out = np.empty(len(weights))
    for b, w in enumerate(weights):
        rows = np.concatenate([np.tile(members[g], int(c)) for g, c in enumerate(w) if c])
        out[b] = score(y[rows], proba[rows])
    return out


def _row_metric(metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    from ecgops.evaluation.metrics import classification_metrics

    return lambda y, p: classification_metrics(y, p)[metric]


def point_score(y: np.ndarray, proba: np.ndarray, metric: str) -> float:
    """The metric on all the beats."""
    if metric in CONFUSION_METRICS:
        return metric_from_confusion(_confusions(y, proba, np.zeros(len(y), int), 1)[0], metric)
    return float(_row_metric(metric)(y, proba))


def _interval(estimate: float, values: np.ndarray, alpha: float) -> Interval:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return Interval(estimate, float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Interval(float(estimate), float(low), float(high))


def compare(
    y: np.ndarray,
    groups: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    metric: str,
    settings: BootstrapConfig,
) -> Comparison:
    """Scores of both models on the gate data with paired bootstrap intervals over groups.

    Args:
        y: true labels (n,).
        groups: patient / record of each beat (n,).
        challenger: the challenger's probabilities (n, k).
        champion: the champion's probabilities (n, k), or None.
        metric: a metric of :func:`ecgops.evaluation.metrics.classification_metrics`.
        settings: ``registry.bootstrap`` (``n``, ``alpha``, ``seed``).

    Returns:
        The :class:`Comparison`.

    Raises:
        ValueError: empty data, or arrays of different lengths.
    """
    y = np.asarray(y, dtype=np.int64)
    if not len(y) or len(groups) != len(y) or len(challenger) != len(y):
        raise ValueError(
            f"gate data: {len(y)} labels, {len(groups)} groups, {len(challenger)} rows"
        )
    _, group_ids = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(group_ids.max()) + 1
    rng = np.random.default_rng(settings.seed)
    draws = rng.integers(0, n_groups, size=(settings.n, n_groups))
    weights = np.stack([np.bincount(d, minlength=n_groups) for d in draws])
    with warnings.catch_warnings():  # a resample may lack a class: its metric is still defined
        warnings.simplefilter("ignore")
        ours = _scores(y, challenger, group_ids, weights, metric)
        ours_point = point_score(y, challenger, metric)
        out = Comparison(
            metric=metric,
            level=1 - settings.alpha,
            resamples=settings.n,
            groups=n_groups,
            challenger=_interval(ours_point, ours, settings.alpha),
        )
        if champion is None:
            return out
        theirs = _scores(y, champion, group_ids, weights, metric)
        theirs_point = point_score(y, champion, metric)
    return replace(
        out,
        champion=_interval(theirs_point, theirs, settings.alpha),
        difference=_interval(ours_point - theirs_point, ours - theirs, settings.alpha),
    )
