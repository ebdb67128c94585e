"""Record-level decisions: aggregation, per-record grouping and the rule learned on validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgops.evaluation import records


def test_aggregation_rules() -> None:
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
    np.testing.assert_allclose(records.aggregate(proba, "mean_proba"), [0.5333333, 0.4666667])
    np.testing.assert_allclose(records.aggregate(proba, "majority"), [1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="unknown record aggregation"):
        records.aggregate(proba, "median")


def test_per_record_groups_beats_in_order_of_appearance() -> None:
    proba = np.array([[0.8, 0.2], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([1, 1, 0, 0])
    keys = np.array(["r2", "r2", "r1", "r1"])
    rec_p, rec_y = records.per_record(proba, y, keys, "mean_proba")
    np.testing.assert_allclose(rec_p, [[0.5, 0.5], [0.5, 0.5]])
    assert rec_y.tolist() == [1, 0]


def test_threshold_rule_is_learned_on_validation_records() -> None:
    # MI records' mean p(MI) sits below 0.5 (a minority-class model): argmax misses them all.
    rec_p1 = np.array([0.05, 0.10, 0.15, 0.20, 0.30, 0.35, 0.40])
    rec_y = np.array([0, 0, 0, 0, 1, 1, 1])
    rec_p = np.column_stack([1 - rec_p1, rec_p1])
    assert records.decide(rec_p, None).tolist() == [0] * 7

    rule = records.fit_rule(rec_p, rec_y, "mean_proba")

    assert rule["kind"] == "threshold" and rule["threshold"] == pytest.approx(0.25)
    assert rule["val_balanced_accuracy"] == 1.0 and rule["val_records"] == 7
    assert records.decide(rec_p, rule).tolist() == rec_y.tolist()
    assert records.rule_from_tag(records.rule_to_tag(rule)) == rule


def test_ties_keep_the_threshold_nearest_one_half() -> None:
    rec_p1 = np.array([0.1, 0.9])
    rule = records.fit_rule(np.column_stack([1 - rec_p1, rec_p1]), np.array([0, 1]), "mean_proba")
    assert rule["threshold"] == 0.5


def test_multiclass_or_single_class_records_keep_argmax() -> None:
    rec_p = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    assert records.fit_rule(rec_p, np.array([1, 0]), "mean_proba")["kind"] == "argmax"
    binary = np.array([[0.7, 0.3], [0.6, 0.4]])
    assert records.fit_rule(binary, np.array([0, 0]), "mean_proba")["kind"] == "argmax"
    assert records.decide(rec_p, {"kind": "argmax"}).tolist() == [1, 0]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown record rule"):
        records.decide(np.array([[0.5, 0.5]]), {"kind": "vote"})
    with pytest.raises(ValueError, match="needs 2 classes"):
        records.decide(np.array([[0.2, 0.3, 0.5]]), {"kind": "threshold", "threshold": 0.5})
    assert records.rule_from_tag("not json") is None and records.rule_from_tag(None) is None


# ---- a real model on the fixture table's real split -------------------------------------------


@pytest.fixture
def ptb_split(cfg_smoke):
    """The PTB fixture table and its splits written into a fresh project."""
    import pandas as pd

    from ecgops.data.splits import make_splits
    from ecgops.paths import beat_table

    path = beat_table(cfg_smoke, "ptb")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.read_parquet(Path(__file__).resolve().parents[1] / "fixtures" / "beats_ptb.parquet")
    table.to_parquet(path, index=False)
    make_splits(cfg_smoke, "ptb")
    return cfg_smoke


def test_record_probabilities_aggregate_a_models_beats_per_record(ptb_split) -> None:
    from sklearn.linear_model import LogisticRegression

    from ecgops.data.splits import load_split
    from ecgops.schema import labels, signals

    parts = load_split(ptb_split, "ptb", "beat")
    model = LogisticRegression(max_iter=500).fit(signals(parts["train"]), labels(parts["train"]))
    test = parts["test"]

    proba, rec_p, rec_y = records.record_probabilities(model, test, "mean_proba")

    np.testing.assert_allclose(proba, model.predict_proba(signals(test)))
    first = test["record"].astype(str).iloc[0]
    np.testing.assert_allclose(
        rec_p[0], proba[(test["record"].astype(str) == first).to_numpy()].mean(0)
    )
    assert len(rec_y) == test["record"].nunique()


def test_evaluate_records_fits_the_rule_on_validation_and_scores_test(ptb_split) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    from ecgops.data.splits import load_split
    from ecgops.schema import labels, signals

    cfg = ptb_split
    parts = load_split(cfg, "ptb", "beat")
    model = LogisticRegression(max_iter=500).fit(signals(parts["train"]), labels(parts["train"]))

    out = records.evaluate_records(cfg, "ptb", model, scheme="beat")

    method = cfg.registry.record_aggregation
    _, val_p, val_y = records.record_probabilities(model, parts["val"], method)
    assert out["rule"] == records.fit_rule(val_p, val_y, method)  # validation, never test
    proba, rec_p, rec_y = records.record_probabilities(model, parts["test"], method)
    assert out["beats"] == len(parts["test"]) and out["records"] == len(rec_y)
    expected = balanced_accuracy_score(labels(parts["test"]), proba.argmax(1))
    assert out["beat_balanced_accuracy"] == pytest.approx(expected, abs=1e-4)
    rule_score = balanced_accuracy_score(rec_y, records.decide(rec_p, out["rule"]))
    assert out["record_balanced_accuracy_rule"] == pytest.approx(rule_score, abs=1e-4)
