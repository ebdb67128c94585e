"""Classification metrics on predicted probabilities (binary and one-vs-rest multiclass)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize

METRIC_NAMES = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, AUROC and AUPRC from class probabilities.

    Binary tasks score AUROC/AUPRC on the positive class (label 1); multiclass tasks use the
    one-vs-rest macro average over the classes present in ``y_true``.

    Args:
        y_true: integer labels, shape (n,).
        proba: probabilities, shape (n, k); the prediction is the arg-max.

    Returns:
        A dict with the five metrics (NaN where a metric is undefined, e.g. one class only).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    y_pred = proba.argmax(axis=1)
    n_classes = proba.shape[1]
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "auroc": float("nan"),
        "auprc": float("nan"),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        return out
    if n_classes == 2:
        out["auroc"] = float(roc_auc_score(y_true, proba[:, 1]))
        out["auprc"] = float(average_precision_score(y_true, proba[:, 1]))
        return out
    onehot = label_binarize(y_true, classes=np.arange(n_classes))
    aurocs, auprcs = [], []
    for c in present:
        aurocs.append(roc_auc_score(onehot[:, c], proba[:, c]))
        auprcs.append(average_precision_score(onehot[:, c], proba[:, c]))
    out["auroc"] = float(np.mean(aurocs))
    out["auprc"] = float(np.mean(auprcs))
    return out


def confusion(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Confusion matrix (rows true, columns predicted) over all k classes."""
    k = proba.shape[1]
    return confusion_matrix(y_true, proba.argmax(axis=1), labels=np.arange(k))


def curve_points(
    y_true: np.ndarray, proba: np.ndarray, class_names: list[str]
) -> tuple[list[dict[str, float | str]], list[dict[str, float | str]]]:
    """ROC and precision-recall curve points, one curve per class (binary: the positive class).

    Returns:
        (roc_rows, pr_rows): lists of dicts with ``class``, ``fpr``/``tpr`` or
        ``recall``/``precision``, for DVC plots and figures.
    """
    y_true = np.asarray(y_true)
    k = proba.shape[1]
    classes = [1] if k == 2 else [c for c in range(k) if (y_true == c).any()]
    roc_rows: list[dict[str, float | str]] = []
    pr_rows: list[dict[str, float | str]] = []
    for c in classes:
        target = (y_true == c).astype(int)
        if target.min() == target.max():
            continue
        fpr, tpr, _ = roc_curve(target, proba[:, c])
        prec, rec, _ = precision_recall_curve(target, proba[:, c])
        fpr, tpr = _thin(fpr, tpr)
        rec, prec = _thin(rec, prec)
        roc_rows += [
            {"class": class_names[c], "fpr": float(a), "tpr": float(b)}
            for a, b in zip(fpr, tpr, strict=True)
        ]
        pr_rows += [
            {"class": class_names[c], "recall": float(a), "precision": float(b)}
            for a, b in zip(rec, prec, strict=True)
        ]
    return roc_rows, pr_rows


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence (equal-width bins)."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def _thin(x: np.ndarray, y: np.ndarray, max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` points of a curve (ends included) for small plot files."""
    if len(x) <= max_points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
    return x[idx], y[idx]
