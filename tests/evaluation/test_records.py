"""Record-level decisions: aggregation, per-record grouping and the rule learned on validation."""

from __future__ import annotations

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
