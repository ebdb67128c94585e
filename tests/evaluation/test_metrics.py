"""Metric computation on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgops.evaluation.metrics import (
    aami_flat,
    aami_from_confusion,
    aami_metrics,
    classification_metrics,
    confusion,
    curve_points,
    expected_calibration_error,
)


def _onehot(pred: list[int], k: int) -> np.ndarray:
    out = np.full((len(pred), k), 0.1 / (k - 1))
    out[np.arange(len(pred)), pred] = 0.9
    return out


def test_perfect_predictions_score_one() -> None:
    y = np.array([0, 1, 1, 0, 1])
    m = classification_metrics(y, _onehot(y.tolist(), 2))
    assert m == {
        "accuracy": 1.0,
        "balanced_accuracy": 1.0,
        "macro_f1": 1.0,
        "auroc": 1.0,
        "auprc": 1.0,
    }


def test_binary_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.35, 0.8])  # predictions 0, 1, 0, 1
    m = classification_metrics(y, np.column_stack([1 - p1, p1]))
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(0.5)  # each class: precision 1/2, recall 1/2
    assert m["auroc"] == pytest.approx(0.75)  # 3 of 4 (positive, negative) pairs ordered
    # ranked: 0.8 (+), 0.6 (-), 0.35 (+), 0.1 (-): AP = 1/2 * 1 + 1/2 * 2/3
    assert m["auprc"] == pytest.approx(0.5 + 1 / 3)


def test_imbalanced_binary_balanced_accuracy_and_f1() -> None:
    y = np.array([0, 0, 0, 1])
    m = classification_metrics(y, _onehot([0, 0, 1, 1], 2))
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_multiclass_one_vs_rest_over_present_classes() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.4, 0.1],
            [0.1, 0.1, 0.8],
            [0.1, 0.2, 0.7],
        ]
    )
    proba = np.column_stack([proba, np.zeros(6)])  # a 4th class absent from y
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    # class 0 vs rest: scores .8 .6 | .2 .5 .1 .1 -> perfectly ranked; class 1: .7 .4 | .1 .3
    # .1 .2 -> perfect; class 2: perfect. The absent class is left out of the mean.
    assert m["auroc"] == pytest.approx(1.0)
    assert m["auprc"] == pytest.approx(1.0)


def test_single_class_leaves_ranking_metrics_undefined() -> None:
    m = classification_metrics(np.array([1, 1]), _onehot([1, 0], 2))
    assert m["accuracy"] == 0.5
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"])


def test_confusion_has_every_class() -> None:
    cm = confusion(np.array([0, 0, 2]), _onehot([0, 2, 2], 3))
    assert cm.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 1]]


def test_curve_points_binary_positive_class_and_thinning() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p1 = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    roc, pr = curve_points(y, np.column_stack([1 - p1, p1]), ["healthy", "MI"])
    assert {r["class"] for r in roc} == {"MI"}
    assert 2 < len(roc) <= 200 and 2 < len(pr) <= 200
    assert roc[0]["fpr"] == 0.0 and roc[-1]["fpr"] == 1.0 and roc[-1]["tpr"] == 1.0
    assert all(0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 for r in pr)


def test_expected_calibration_error_by_hand() -> None:
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, _onehot([1, 0, 1, 0], 2)) == pytest.approx(0.9)
    # confidence 0.75 in every row, right in 3 of 4: calibrated
    proba = np.array([[0.75, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.25]])
    assert expected_calibration_error(y, proba) == pytest.approx(0.0)


AAMI_NAMES = ["N", "S", "V", "F", "Q"]


def _labels_from_confusion(cm: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Label and prediction vectors that produce ``cm`` (rows true, columns predicted)."""
    y, p = [], []
    for i, row in enumerate(cm):
        for j, count in enumerate(row):
            y += [i] * count
            p += [j] * count
    return np.array(y), np.array(p)


def test_aami_figures_from_a_known_confusion_matrix() -> None:
    cm = [
        [80, 5, 3, 1, 1],  # N: 90 beats, one predicted Q
        [4, 6, 0, 0, 0],  # S: 10
        [2, 0, 15, 3, 0],  # V: 20
        [1, 0, 1, 2, 0],  # F: 4
        [1, 1, 0, 0, 2],  # Q: 4 beats, dropped from the 4-class figures
    ]
    y, pred = _labels_from_confusion(cm)
    a = aami_metrics(y, pred, AAMI_NAMES)
    assert a["N"] == {"sensitivity": pytest.approx(80 / 90), "ppv": pytest.approx(80 / 87), "n": 90}
    assert a["S"]["sensitivity"] == pytest.approx(0.6)
    assert a["S"]["ppv"] == pytest.approx(6 / 11)  # the Q beat predicted S is not counted
    assert a["V"]["sensitivity"] == pytest.approx(0.75) and a["V"]["ppv"] == pytest.approx(15 / 19)
    assert a["F"]["sensitivity"] == pytest.approx(0.5) and a["F"]["ppv"] == pytest.approx(2 / 6)
    assert a["mean_sensitivity"] == pytest.approx((80 / 90 + 0.6 + 0.75 + 0.5) / 4)
    assert a["accuracy"] == pytest.approx(103 / 124) and a["n"] == 124  # 128 beats less 4 Q
    assert a["absent"] == []
    five = a["five_class"]
    assert five["accuracy"] == pytest.approx(105 / 128) and five["n"] == 128
    assert five["balanced_accuracy"] == pytest.approx((80 / 90 + 0.6 + 0.75 + 0.5 + 0.5) / 5)
    assert five["per_class"]["Q"] == {"sensitivity": 0.5, "ppv": pytest.approx(2 / 3)}
    assert five["per_class"]["S"]["ppv"] == pytest.approx(6 / 12)  # here the Q beat counts
    assert aami_from_confusion(np.array(cm), AAMI_NAMES) == a


def test_aami_from_probabilities_and_absent_classes() -> None:
    y = np.array([0, 0, 2, 2, 4])
    proba = _onehot([0, 2, 2, 2, 4], 5)
    a = aami_metrics(y, proba, AAMI_NAMES)
    assert a["absent"] == ["S", "F"]
    assert a["S"]["sensitivity"] is None and a["S"]["ppv"] is None
    assert a["mean_sensitivity"] == pytest.approx((0.5 + 1.0) / 2)  # over the classes present
    assert a["accuracy"] == pytest.approx(3 / 4)
    flat = aami_flat(a, "aami_test")
    assert flat["aami_test_N_sensitivity"] == pytest.approx(0.5)
    assert flat["aami_test_V_ppv"] == pytest.approx(2 / 3)
    assert "aami_test_S_sensitivity" not in flat  # undefined figures are not logged
    assert flat["aami_test_5class_accuracy"] == pytest.approx(4 / 5)


def test_aami_refuses_classes_without_the_aami_names() -> None:
    with pytest.raises(ValueError, match="AAMI classes"):
        aami_metrics(np.array([0, 1]), np.array([0, 1]), ["healthy", "MI"])
    with pytest.raises(ValueError, match="shape"):
        aami_from_confusion(np.zeros((3, 3)), AAMI_NAMES)
