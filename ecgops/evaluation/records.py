"""Record-level decisions: aggregate a record's beat probabilities, then decide.

A record (one ECG recording) is what a clinician has in hand, so the platform also gives one
decision per record. Its beats' probabilities are aggregated (``registry.record_aggregation``:
their mean, or the share of beats voting for each class), then a *record rule* decides:

- ``argmax``: the class with the largest aggregate;
- ``threshold`` (binary tasks): class 1 when the aggregate of class 1 reaches a threshold that
  is learned on the validation records (the one maximising their balanced accuracy; ties go to
  the threshold nearest 0.5). Beat probabilities of a class-weighted model are rarely
  calibrated per record, so a learned threshold corrects the record-level prior.

The rule is fitted on validation data only, never on test data, and travels with the
registered model version as a tag (:data:`RULE_TAG`), so ``ecgops predict --record`` applies
the rule chosen when the model was registered. At registration it is fitted on the validation
records of the registered model's own split, with that model's own predictions.

:func:`record_probabilities` aggregates any beat model's predictions of a beat table per record
(the registry's record rule and :func:`evaluate_records` both use it); :func:`evaluate_records`
compares beat- and record-level balanced accuracy of a model on a split part.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ecgops.config import Config

RULE_TAG = "ecgops.record_rule"
"""Model-version tag holding the record rule as JSON."""
DEFAULT_RULE: dict[str, Any] = {"kind": "argmax"}


class ProbabilityModel(Protocol):
    """Anything that maps beats (n, 187) to class probabilities (n, k)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        """Class probabilities, shape (n, k)."""
        ...


def aggregate(proba: np.ndarray, method: str) -> np.ndarray:
    """One probability vector per record from its beats' probabilities.

    Args:
        proba: beat probabilities (n, k), n >= 1.
        method: ``mean_proba`` (mean of the probabilities) or ``majority`` (share of beats
            predicted as each class).

    Returns:
        Shape (k,), summing to 1.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if method == "mean_proba":
        return proba.mean(axis=0)
    if method == "majority":
        votes = np.bincount(proba.argmax(axis=1), minlength=proba.shape[1])
        return votes / votes.sum()
    raise ValueError(f"unknown record aggregation {method!r}; expected mean_proba or majority")


def per_record(
    proba: np.ndarray, y: np.ndarray, keys: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate beats into records.

    Args:
        proba: beat probabilities (n, k).
        y: beat labels (n,); a record's label is its beats' majority label.
        keys: record id of each beat (n,).
        method: aggregation (see :func:`aggregate`).

    Returns:
        ``(record_proba (r, k), record_label (r,))`` in order of first appearance.
    """
    keys = np.asarray(keys)
    y = np.asarray(y, dtype=np.int64)
    _, first = np.unique(keys, return_index=True)
    order = keys[np.sort(first)]
    rec_p = np.stack([aggregate(proba[keys == key], method) for key in order])
    rec_y = np.array([np.bincount(y[keys == key]).argmax() for key in order], dtype=np.int64)
    return rec_p, rec_y


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in range(k) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


def fit_rule(rec_proba: np.ndarray, rec_y: np.ndarray, method: str) -> dict[str, Any]:
    """Learn the record rule on validation records.

    Binary tasks with both classes among the records get a ``threshold`` rule; anything
    else (multiclass, one class only) gets ``argmax``.

    Returns:
        JSON-ready rule: ``{"kind", "aggregation", "threshold"?, "val_records",
        "val_balanced_accuracy"}``.
    """
    rec_proba = np.asarray(rec_proba, dtype=np.float64)
    rec_y = np.asarray(rec_y, dtype=np.int64)
    k = rec_proba.shape[1]
    rule: dict[str, Any] = {"kind": "argmax", "aggregation": method, "val_records": len(rec_y)}
    if k == 2 and len(np.unique(rec_y)) == 2:
        p1 = rec_proba[:, 1]
        values = np.unique(p1)
        candidates = np.unique(np.concatenate([[0.5], (values[:-1] + values[1:]) / 2]))
        scores = np.array([_balanced_accuracy(rec_y, (p1 >= t).astype(int), 2) for t in candidates])
        best = np.flatnonzero(scores == scores.max())
        threshold = float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
        rule.update(kind="threshold", threshold=round(threshold, 6))
    rule["val_balanced_accuracy"] = round(_balanced_accuracy(rec_y, decide(rec_proba, rule), k), 4)
    return rule


def decide(rec_proba: np.ndarray, rule: dict[str, Any] | None) -> np.ndarray:
    """Class per record under ``rule`` (``None``: argmax)."""
    rec_proba = np.atleast_2d(np.asarray(rec_proba, dtype=np.float64))
    rule = rule or DEFAULT_RULE
    if rule.get("kind") == "threshold":
        if rec_proba.shape[1] != 2:
            raise ValueError(f"threshold rule needs 2 classes, got {rec_proba.shape[1]}")
        return (rec_proba[:, 1] >= float(rule["threshold"])).astype(np.int64)
    if rule.get("kind", "argmax") != "argmax":
        raise ValueError(f"unknown record rule {rule.get('kind')!r}; expected argmax or threshold")
    return rec_proba.argmax(axis=1).astype(np.int64)


def rule_to_tag(rule: dict[str, Any]) -> str:
    """The rule as a compact JSON tag value."""
    return json.dumps(rule, sort_keys=True, separators=(",", ":"))


def rule_from_tag(value: str | None) -> dict[str, Any] | None:
    """The rule stored by :func:`rule_to_tag`, or None when absent or unreadable."""
    if not value:
        return None
    try:
        rule = json.loads(value)
    except ValueError:
        return None
    return rule if isinstance(rule, dict) and "kind" in rule else None


def record_probabilities(
    model: ProbabilityModel,
    frame: pd.DataFrame,
    method: str,
    inputs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict a beat table (with a ``record`` column) and aggregate it per record.

    Args:
        model: a beat model (e.g. :class:`ecgops.registry.model.LoadedModel`).
        frame: beats with ``record`` and ``label`` columns.
        method: aggregation (see :func:`aggregate`).
        inputs: the model's input for ``frame``'s rows when it reads more than the beats
            (leads side by side, the RR context); default the beats.

    Returns:
        ``(beat probabilities (n, k), record probabilities (r, k), record labels (r,))``.
    """
    from ecgops.schema import labels, signals

    x = signals(frame) if inputs is None else inputs
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    keys = frame["record"].astype(str).to_numpy()
    return proba, *per_record(proba, labels(frame), keys, method)


def evaluate_records(
    cfg: Config, task: str, model: ProbabilityModel, scheme: str = "patient", part: str = "test"
) -> dict[str, Any]:
    """Beat-level vs record-level balanced accuracy of a model on a split part.

    Record decisions use the argmax of the aggregate and the rule learned on the validation
    part of the same split with the same model (:func:`fit_rule`), never on ``part``. A
    record's true label is its beats' majority label (PTB records have a single label). Use a
    model trained on the same scheme, or the test part is not held out.

    Args:
        cfg: configuration (split files, ``registry.record_aggregation``).
        task: ``ptb`` or ``mitbih``.
        model: the beat model to evaluate.
        scheme: split scheme.
        part: the part scored (``test`` by default).

    Returns:
        ``{"task", "scheme", "part", "beats", "records", "aggregation", "rule",
        "beat_balanced_accuracy", "record_balanced_accuracy",
        "record_balanced_accuracy_rule"}``.

    Raises:
        DataError: the split is missing or stale, or the part is empty.
    """
    from sklearn.metrics import balanced_accuracy_score

    from ecgops.data.splits import load_split
    from ecgops.errors import DataError
    from ecgops.schema import labels

    parts = load_split(cfg, task, scheme)
    df = parts[part]
    if df.empty:
        raise DataError(None, f"{task}/{scheme} has an empty {part} part")
    method = cfg.registry.record_aggregation
    proba, rec_p, rec_y = record_probabilities(model, df, method)
    _, val_p, val_y = record_probabilities(model, parts["val"], method)
    rule = fit_rule(val_p, val_y, method)

    def score(y: np.ndarray, pred: np.ndarray) -> float:
        """Balanced accuracy, rounded for the report."""
        return round(float(balanced_accuracy_score(y, pred)), 4)

    return {
        "task": task,
        "scheme": scheme,
        "part": part,
        "beats": int(len(df)),
        "records": len(rec_y),
        "aggregation": method,
        "rule": rule,
        "beat_balanced_accuracy": score(labels(df), proba.argmax(1)),
        "record_balanced_accuracy": score(rec_y, rec_p.argmax(1)),
        "record_balanced_accuracy_rule": score(rec_y, decide(rec_p, rule)),
    }
