"""Record-level decisions of a beat model: mean of beat probabilities vs a learned rule.

A PTB record (one ECG) has one label, so the decision that matters is one per record. Two
rules turn a record's beat probabilities of MI into that decision, both fitted on the
**validation records only**:

- ``mean``: the mean of the beats' probabilities (``registry.record_aggregation:
  mean_proba``) with the threshold that maximises the validation records' balanced accuracy
  (:func:`ecgops.evaluation.records.fit_rule`, the rule the registry stores);
- ``learned``: a logistic regression (balanced class weights, standardised inputs) on
  per-record statistics of the beat probabilities (:func:`record_features`: mean, standard
  deviation, ``multilead.record.quantiles``, share of beats above 0.5, log beat count).

:func:`select_rule` picks between them by stratified cross-validation over the validation
records (``multilead.record.select_folds``; ties keep ``mean``), and :func:`record_block` scores
both, and the chosen one, on the test records: balanced accuracy and AUROC beside the
beat-level figures (the ``record`` entry of a multi-lead metrics record).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgops.config import MultileadRecordConfig

POSITIVE = 1  # the MI class of the PTB tasks
BEAT_VOTE = 0.5  # a beat "votes" MI at this probability (share-of-votes feature)
RULES = ("mean", "learned")


def record_keys(keys: np.ndarray) -> np.ndarray:
    """Record ids in order of first appearance."""
    keys = np.asarray(keys).astype(str)
    _, first = np.unique(keys, return_index=True)
    return keys[np.sort(first)]


def record_features(
    p1: np.ndarray, keys: np.ndarray, quantiles: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-record statistics of the beats' probability of MI (pure).

    Args:
        p1: each beat's probability of MI (n,).
        keys: each beat's record id (n,).
        quantiles: quantiles of ``p1`` per record.

    Returns:
        ``(record ids (r,), features (r, 4 + len(quantiles)))``: mean, std, the quantiles,
        share of beats at or above 0.5, log of the beat count.
    """
    p1 = np.asarray(p1, dtype=np.float64)
    keys = np.asarray(keys).astype(str)
    order = record_keys(keys)
    rows = []
    for key in order:
        p = p1[keys == key]
        rows.append(
            [p.mean(), p.std(), *np.quantile(p, quantiles), (p >= BEAT_VOTE).mean(), np.log(len(p))]
        )
    return order, np.asarray(rows, dtype=np.float64)


def record_labels(y: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each record's label (its beats' majority label), records in first-appearance order."""
    y = np.asarray(y, dtype=np.int64)
    keys = np.asarray(keys).astype(str)
    return np.array([np.bincount(y[keys == k]).argmax() for k in record_keys(keys)])


def fit_learned(features: np.ndarray, y: np.ndarray, cfg: MultileadRecordConfig, seed: int) -> Any:
    """The learned rule: standardised features -> balanced logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(
        C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter, random_state=seed
    )
    return make_pipeline(StandardScaler(), model).fit(features, y)


def _mean_threshold(features: np.ndarray, y: np.ndarray) -> float:
    from ecgops.evaluation.records import fit_rule

    mean = features[:, 0]
    rule = fit_rule(np.column_stack([1 - mean, mean]), y, "mean_proba")
    return float(rule.get("threshold", BEAT_VOTE))


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls)) if recalls else float("nan")


def select_rule(
    features: np.ndarray, y: np.ndarray, cfg: MultileadRecordConfig, seed: int
) -> dict[str, Any]:
    """Fit both rules on validation records and pick one by cross-validation over them.

    Args:
        features: validation records' :func:`record_features`.
        y: their labels.
        cfg: ``multilead.record``.
        seed: fold and model seed.

    Returns:
        ``{"selected", "threshold", "learned" (the fitted model or None), "cv"}``: ``cv``
        holds each rule's out-of-fold balanced accuracy on the validation records (empty when
        a class has fewer than two records: then ``mean`` is kept).
    """
    from sklearn.model_selection import StratifiedKFold

    out: dict[str, Any] = {"selected": "mean", "threshold": BEAT_VOTE, "learned": None, "cv": {}}
    counts = np.bincount(y, minlength=2)
    if len(y) == 0 or counts.min() == 0:
        return out
    out["threshold"] = _mean_threshold(features, y)
    out["learned"] = fit_learned(features, y, cfg, seed)
    folds = min(cfg.select_folds, int(counts.min()))
    if folds < 2:
        return out
    pred = {rule: np.zeros(len(y), dtype=np.int64) for rule in RULES}
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, y)
    for train, held in split:
        threshold = _mean_threshold(features[train], y[train])
        pred["mean"][held] = (features[held, 0] >= threshold).astype(np.int64)
        if len(np.unique(y[train])) < 2:
            pred["learned"][held] = pred["mean"][held]
            continue
        pred["learned"][held] = fit_learned(features[train], y[train], cfg, seed).predict(
            features[held]
        )
    out["cv"] = {rule: round(_balanced_accuracy(y, p), 4) for rule, p in pred.items()}
    if out["cv"]["learned"] > out["cv"]["mean"]:
        out["selected"] = "learned"
    return out


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def record_block(
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: MultileadRecordConfig,
    seed: int,
) -> dict[str, Any]:
    """Record-level figures of one model: both rules fitted on ``val``, scored on ``test``.

    Args:
        val: validation ``(beat probabilities (n, 2), beat labels, record ids)``.
        test: test beats, the same.
        cfg: ``multilead.record``.
        seed: seed.

    Returns:
        ``records`` (test), ``val_records``, ``selected``, ``selection_cv``, the test figures
        of ``mean`` (``balanced_accuracy`` with the validation threshold, ``threshold``,
        ``balanced_accuracy_argmax``, ``auroc``), of ``learned`` (``balanced_accuracy``,
        ``auroc``) and of the selected rule (``balanced_accuracy``, ``auroc``).
    """
    q = cfg.quantiles
    _, f_val = record_features(val[0][:, POSITIVE], val[2], q)
    y_val = record_labels(val[1], val[2])
    _, f_te = record_features(test[0][:, POSITIVE], test[2], q)
    y_te = record_labels(test[1], test[2])
    chosen = select_rule(f_val, y_val, cfg, seed)
    mean = f_te[:, 0]
    block: dict[str, Any] = {
        "records": int(len(y_te)),
        "val_records": int(len(y_val)),
        "selected": chosen["selected"],
        "selection_cv": chosen["cv"],
        "mean": {
            "threshold": round(chosen["threshold"], 6),
            "balanced_accuracy": _balanced_accuracy(y_te, (mean >= chosen["threshold"]) * 1),
            "balanced_accuracy_argmax": _balanced_accuracy(y_te, (mean >= BEAT_VOTE) * 1),
            "auroc": _auroc(y_te, mean),
        },
    }
    learned = chosen["learned"]
    if learned is not None:
        block["learned"] = {
            "balanced_accuracy": _balanced_accuracy(y_te, learned.predict(f_te)),
            "auroc": _auroc(y_te, learned.predict_proba(f_te)[:, POSITIVE]),
        }
    best = block[chosen["selected"]]
    block["balanced_accuracy"] = best["balanced_accuracy"]
    block["auroc"] = best["auroc"]
    return block


def record_cv_summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (ddof 1) of the folds' record-level figures (selected, mean, learned)."""
    out: dict[str, Any] = {"folds": len(blocks)}
    for prefix, pick in (
        ("", lambda b: b),
        ("mean_", lambda b: b["mean"]),
        ("learned_", lambda b: b.get("learned", {})),
    ):
        for metric in ("balanced_accuracy", "auroc"):
            values = np.array([pick(b).get(metric, np.nan) for b in blocks], dtype=np.float64)
            std = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
            out[f"{prefix}{metric}_mean"] = float(np.nanmean(values)) if len(values) else np.nan
            out[f"{prefix}{metric}_std"] = std
    out["selected"] = [b["selected"] for b in blocks]
    return out
