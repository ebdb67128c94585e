"""Classification metrics on predicted probabilities (binary and one-vs-rest multiclass)."""

from __future__ import annotations

from typing import Any

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


AAMI_CLASSES = ("N", "S", "V", "F")
"""The AAMI classes of the 4-class figures; the fifth class, Q, is left out of them."""
AAMI_Q = "Q"


def aami_metrics(
    y_true: np.ndarray, proba_or_pred: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """AAMI (EC57) beat-classification figures of a MIT-BIH model.

    See :func:`aami_from_confusion` for the definitions (how Q beats and Q predictions count).

    Args:
        y_true: integer labels, shape (n,), indices into ``class_names``.
        proba_or_pred: class probabilities (n, k) (the prediction is the arg-max) or
            predicted labels (n,).
        class_names: class names in label order; must hold N, S, V, F (and usually Q).

    Returns:
        The figures of :func:`aami_from_confusion`.
    """
    pred = np.asarray(proba_or_pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    cm = confusion_matrix(np.asarray(y_true), pred, labels=np.arange(len(class_names)))
    return aami_from_confusion(cm, class_names)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def aami_from_confusion(cm: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """AAMI figures from a confusion matrix (rows true, columns predicted, in label order).

    The 4-class figures follow the inter-patient literature (de Chazal et al. 2004 and later),
    which leaves Q (unclassifiable and paced-fusion) beats out of the evaluation:

    - beats whose **true** class is Q are dropped from every 4-class figure;
    - a beat of N, S, V or F **predicted** Q stays in: it is a miss of its true class (lowers
      that class's sensitivity and the accuracy) and counts towards no class's positive
      predictivity. The model's own arg-max is used; it is not re-taken over four classes.

    Per class c of N, S, V, F: sensitivity ``Se = TP / (beats of class c)`` and positive
    predictivity ``+P = TP / (non-Q beats predicted c)``; ``mean_sensitivity`` is the mean of
    the four Se (the 4-class balanced accuracy), over the classes that have beats (those
    without are listed in ``absent``); ``accuracy`` is the share of non-Q beats predicted
    right. The ``five_class`` figures use every beat and class: accuracy, balanced accuracy
    (mean recall over the classes present) and per-class Se and +P.

    Args:
        cm: confusion matrix, shape (k, k).
        class_names: class names in label order; must hold N, S, V and F.

    Returns:
        ``{"N": {"sensitivity", "ppv", "n"}, ..., "F": {...}, "mean_sensitivity", "accuracy",
        "n", "absent", "five_class": {"accuracy", "balanced_accuracy", "n", "per_class"}}``;
        a figure without beats to define it is None.

    Raises:
        ValueError: a class of N, S, V, F is missing from ``class_names``, or the matrix shape
            does not match them.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {k} classes")
    missing = [c for c in AAMI_CLASSES if c not in class_names]
    if missing:
        raise ValueError(f"class names {class_names} lack the AAMI classes {missing}")
    keep = [i for i, name in enumerate(class_names) if name != AAMI_Q]  # true-class rows kept
    four = [class_names.index(c) for c in AAMI_CLASSES]
    kept = cm[keep]
    out: dict[str, Any] = {}
    sens = []
    for name, i in zip(AAMI_CLASSES, four, strict=True):
        se = _ratio(cm[i, i], cm[i].sum())
        out[name] = {
            "sensitivity": se,
            "ppv": _ratio(cm[i, i], kept[:, i].sum()),
            "n": int(cm[i].sum()),
        }
        if se is not None:
            sens.append(se)
    out["mean_sensitivity"] = float(np.mean(sens)) if sens else None
    out["accuracy"] = _ratio(sum(cm[i, i] for i in four), kept.sum())
    out["n"] = int(kept.sum())
    out["absent"] = [c for c, i in zip(AAMI_CLASSES, four, strict=True) if cm[i].sum() == 0]
    recalls = [cm[i, i] / cm[i].sum() for i in range(k) if cm[i].sum() > 0]
    out["five_class"] = {
        "accuracy": _ratio(np.trace(cm), cm.sum()),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "n": int(cm.sum()),
        "per_class": {
            name: {
                "sensitivity": _ratio(cm[i, i], cm[i].sum()),
                "ppv": _ratio(cm[i, i], cm[:, i].sum()),
            }
            for i, name in enumerate(class_names)
        },
    }
    return out


def aami_flat(aami: dict[str, Any], prefix: str) -> dict[str, float]:
    """Flat ``{prefix}_{class}_sensitivity``-style figures of :func:`aami_from_confusion`, for
    MLflow (undefined figures left out).

    Args:
        aami: the figures.
        prefix: e.g. ``aami_test``.

    Returns:
        Name -> value: per class of N, S, V, F ``_sensitivity`` and ``_ppv``, then
        ``_mean_sensitivity``, ``_accuracy``, ``_5class_accuracy``, ``_5class_balanced_accuracy``.
    """
    out: dict[str, float | None] = {}
    for c in AAMI_CLASSES:
        entry = aami[c]
        out[f"{prefix}_{c}_sensitivity"] = entry["sensitivity"]
        out[f"{prefix}_{c}_ppv"] = entry["ppv"]
    out[f"{prefix}_mean_sensitivity"] = aami["mean_sensitivity"]
    out[f"{prefix}_accuracy"] = aami["accuracy"]
    five = aami["five_class"]
    out[f"{prefix}_5class_accuracy"] = five["accuracy"]
    out[f"{prefix}_5class_balanced_accuracy"] = five["balanced_accuracy"]
    return {k: float(v) for k, v in out.items() if v is not None}
