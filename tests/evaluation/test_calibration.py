"""Calibrators fitted on validation predictions of real models trained on the beat fixtures.

Every model here is trained on the train part of a stratified train/val/test cut of
``tests/fixtures/beats_{ptb,mitbih}.parquet``; calibrators are fitted on the val part only and
judged on the test part, which they only transform.
"""

from __future__ import annotations

import inspect
import json
import logging
import pickle
import warnings
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from ecgops.config import Config
from ecgops.evaluation.calibration import (
    METHODS,
    CalibratedPredictor,
    Calibrator,
    IdentityCalibrator,
    IsotonicCalibrator,
    SigmoidCalibrator,
    TemperatureScaler,
    brier_score,
    calibration_record,
    calibration_report,
    fit_calibrator,
    fit_from_config,
    method_for,
    reliability_bins,
)
from ecgops.evaluation.metrics import expected_calibration_error
from ecgops.evaluation.plots import plot_reliability_comparison
from ecgops.models.classical import predict_proba_full
from ecgops.schema import labels, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TASKS = ("ptb", "mitbih")
SEEDS = range(5)
HOLDOUT = 0.6  # val + test share of the fixture rows; val and test split it in half
UNREGULARISED_C = 1e4  # a logistic regression that separates the tiny train part: overconfident
N_BINS = 10


def _beats(task: str) -> tuple[np.ndarray, np.ndarray, int]:
    df = pd.read_parquet(FIXTURES / f"beats_{task}.parquet")
    y = labels(df)
    return signals(df), y, int(y.max()) + 1


def _cut(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train / val / test row indices."""
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=HOLDOUT, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return train, val, test


def _tree_predictions(task: str, seed: int):
    """A single fully grown tree: one-hot probabilities, so confidence 1 on every beat."""
    x, y, k = _beats(task)
    train, val, test = _cut(y, seed)
    tree = DecisionTreeClassifier(random_state=seed).fit(x[train], y[train])
    proba = {
        part: predict_proba_full(tree, x[rows], k) for part, rows in (("val", val), ("test", test))
    }
    return y[val], proba["val"], y[test], proba["test"], k


def _lr(task: str, seed: int, c: float = UNREGULARISED_C):
    x, y, k = _beats(task)
    train, val, test = _cut(y, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=c, max_iter=5000).fit(x[train], y[train])
    return model, x, y, (train, val, test), k


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
@pytest.mark.parametrize("task", TASKS)
def test_classical_calibrators_lower_test_ece_of_an_overconfident_tree(task, method) -> None:
    for seed in SEEDS:
        y_val, p_val, y_test, p_test, k = _tree_predictions(task, seed)
        assert np.all(p_test.max(axis=1) == 1.0)  # known overconfident: always certain
        calibrator = fit_calibrator(method, y_val, p_val, list(range(k)))
        report = calibration_report(y_test, p_test, calibrator.transform(p_test), N_BINS)
        assert report["ece_after"] <= report["ece_before"], (seed, report)
        assert report["brier_after"] < report["brier_before"], (seed, report)


@pytest.mark.parametrize("task", TASKS)
def test_temperature_softens_an_overconfident_model_and_keeps_its_argmax(task) -> None:
    ece_before, ece_after = [], []
    for seed in SEEDS:
        model, x, y, (_, val, test), k = _lr(task, seed)
        p_val, p_test = model.predict_proba(x[val]), model.predict_proba(x[test])
        scaler = fit_calibrator("temperature", y[val], p_val, list(range(k)))
        after = scaler.transform(p_test)
        assert scaler.temperature_ > 1.0  # overconfident: the fit softens it
        assert scaler.describe()["val_nll_after"] < scaler.describe()["val_nll_before"]
        np.testing.assert_array_equal(after.argmax(axis=1), p_test.argmax(axis=1))
        np.testing.assert_allclose(after.sum(axis=1), 1.0)
        labels_k = list(range(k))
        assert log_loss(y[test], after, labels=labels_k) < log_loss(
            y[test], p_test, labels=labels_k
        )
        report = calibration_report(y[test], p_test, after, N_BINS)
        ece_before.append(report["ece_before"])
        ece_after.append(report["ece_after"])
    assert np.mean(ece_after) < np.mean(ece_before)


@pytest.mark.parametrize("task", TASKS)
def test_temperature_on_logits_equals_temperature_on_probabilities(task) -> None:
    model, x, y, (_, val, test), k = _lr(task, seed=0, c=1.0)
    logits = model.decision_function(x[val])
    if logits.ndim == 1:  # binary: the decision function is the logit of class 1
        logits = np.column_stack([np.zeros_like(logits), logits])
    from_logits = fit_calibrator("temperature", y[val], logits, list(range(k)), inputs="logits")
    from_proba = fit_calibrator("temperature", y[val], model.predict_proba(x[val]), list(range(k)))
    assert from_logits.temperature_ == pytest.approx(from_proba.temperature_, rel=1e-4)
    np.testing.assert_allclose(
        from_logits.transform(logits), from_proba.transform(model.predict_proba(x[val])), atol=1e-5
    )


def _missing_class_predictions():
    """MIT-BIH: the model never saw classes 3 and 4; validation holds no beat of class 2."""
    x, y, k = _beats("mitbih")
    train, val, test = _cut(y, seed=0)
    train = train[y[train] < 3]
    val = val[y[val] != 2]
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    return (
        y[val],
        predict_proba_full(model, x[val], k),
        predict_proba_full(model, x[test], k),
        k,
    )


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_one_vs_rest_rows_sum_to_one_and_unfitted_classes_keep_their_probability(method) -> None:
    y_val, p_val, p_test, k = _missing_class_predictions()
    assert np.all(p_test[:, 3:] == 0.0)
    calibrator = fit_calibrator(method, y_val, p_val, list("NSVFQ"))
    after = calibrator.transform(p_test)
    assert after.shape == p_test.shape
    assert np.isfinite(after).all()
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    assert np.all(after[:, 3:] == 0.0)  # 3, 4: never predicted (absent from training)
    # 2: absent from validation, so no map: it keeps the model's own probability (rows are
    # renormalised), never ruled out for lack of evidence
    assert (after[:, 2] > 0).sum() == (p_test[:, 2] > 0).sum() > 0
    facts = calibrator.describe()
    assert facts["calibrated_classes"] == [0, 1]
    assert set(facts["inactive_classes"]) == {"2", "3", "4"}
    assert "validation" in facts["inactive_classes"]["2"]
    assert "training" in facts["inactive_classes"]["3"]


def test_calibrated_predictor_returns_every_class_of_the_task() -> None:
    """A pipeline trained without classes 3 and 4 still serves five calibrated columns."""
    x, y, k = _beats("mitbih")
    train, val, test = _cut(y, seed=0)
    train = train[y[train] < 3]
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    p_val = predict_proba_full(model, x[val], k)
    predictor = CalibratedPredictor(model, fit_calibrator("isotonic", y[val], p_val, range(k)))
    proba = predictor.predict_proba(x[test])
    assert proba.shape == (len(test), k)
    assert np.all(proba[:, 3:] == 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="fitted"):
        CalibratedPredictor(model, IsotonicCalibrator())


def test_temperature_keeps_never_predicted_classes_at_zero() -> None:
    y_val, p_val, p_test, k = _missing_class_predictions()
    scaler = fit_calibrator("temperature", y_val, p_val, list(range(k)))
    after = scaler.transform(p_test)
    assert scaler.describe()["never_predicted_classes"] == [3, 4]
    assert np.all(after[:, 3:] == 0.0)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    np.testing.assert_array_equal(after.argmax(axis=1), p_test.argmax(axis=1))


def test_binary_isotonic_is_one_map_on_the_positive_class() -> None:
    y_val, p_val, _, p_test, _ = _tree_predictions("ptb", seed=0)
    calibrator = fit_calibrator("isotonic", y_val, p_val, ["healthy", "MI"])
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p_val[:, 1], y_val)
    after = calibrator.transform(p_test)
    np.testing.assert_allclose(after[:, 1], reference.predict(p_test[:, 1]))
    np.testing.assert_allclose(after.sum(axis=1), 1.0)


def test_none_is_the_identity() -> None:
    y_val, p_val, _, p_test, k = _tree_predictions("mitbih", seed=0)
    calibrator = fit_calibrator("none", y_val, p_val, list(range(k)))
    assert isinstance(calibrator, IdentityCalibrator)
    after = calibrator.transform(p_test)
    np.testing.assert_array_equal(after, p_test)
    assert after is not p_test


@pytest.mark.parametrize(
    "dumps, loads", [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)]
)
@pytest.mark.parametrize("method", METHODS)
def test_calibrated_predictor_pickles_round_trip(method, dumps, loads) -> None:
    model, x, y, (_, val, test), k = _lr("mitbih", seed=0)
    calibrator = fit_calibrator(method, y[val], model.predict_proba(x[val]), list(range(k)))
    predictor = CalibratedPredictor(model, calibrator)
    restored = loads(dumps(predictor))
    np.testing.assert_array_equal(restored.predict_proba(x[test]), predictor.predict_proba(x[test]))
    assert restored.calibrator.describe() == calibrator.describe()


def test_calibrators_fit_on_validation_only() -> None:
    """By construction: ``fit`` takes validation labels and probabilities, and nothing else;
    transforming test rows leaves the fitted state untouched."""
    for cls in (IdentityCalibrator, TemperatureScaler, IsotonicCalibrator, SigmoidCalibrator):
        assert list(inspect.signature(cls().fit).parameters) == ["y_val", "proba_val"]
    assert [p for p in inspect.signature(fit_calibrator).parameters if "test" in p] == []
    y_val, p_val, y_test, p_test, k = _tree_predictions("mitbih", seed=0)
    for method in METHODS:
        calibrator = fit_calibrator(method, y_val, p_val, list(range(k)))
        assert calibrator.n_fit_ == len(y_val)
        state = pickle.dumps(calibrator)
        on_val = calibrator.transform(p_val)
        record = calibration_record(calibrator, {"val": (y_val, p_val), "test": (y_test, p_test)})
        assert pickle.dumps(calibrator) == state
        np.testing.assert_array_equal(calibrator.transform(p_val), on_val)
        assert record["fitted"]["n_fit"] == len(y_val)
        assert record["test"]["n"] == len(y_test)
        json.dumps(record, allow_nan=False)  # goes into the metrics JSON as it is


def test_report_bins_agree_with_the_ece_and_brier_is_by_hand() -> None:
    y_val, p_val, y_test, p_test, k = _tree_predictions("mitbih", seed=1)
    after = fit_calibrator("isotonic", y_val, p_val, list(range(k))).transform(p_test)
    report = calibration_report(y_test, p_test, after, N_BINS)
    for key, proba in (("before", p_test), ("after", after)):
        bins = report[f"bins_{key}"]
        assert sum(b["count"] for b in bins) == len(y_test)
        ece = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / len(y_test)
        assert ece == pytest.approx(report[f"ece_{key}"])
        assert ece == pytest.approx(expected_calibration_error(y_test, proba, N_BINS))
    # one-hot tree: every beat in the top bin, Brier = 2 x error rate (multiclass form)
    assert report["bins_before"][0]["count"] == len(y_test)
    error = 1.0 - report["bins_before"][0]["accuracy"]
    assert report["brier_before"] == pytest.approx(2 * error)
    assert brier_score([0, 1], [[0.8, 0.2], [0.4, 0.6]]) == pytest.approx((0.04 + 0.16) / 2)
    assert brier_score([2], [[0.2, 0.3, 0.5]]) == pytest.approx(0.04 + 0.09 + 0.25)
    assert reliability_bins([0, 1], [[0.8, 0.2], [0.4, 0.6]], 2) == [
        {"lo": 0.5, "hi": 1.0, "confidence": 0.7, "accuracy": 1.0, "count": 2}
    ]


def test_config_section_chooses_methods_and_skips_small_validation(
    cfg_smoke: Config, caplog: pytest.LogCaptureFixture
) -> None:
    section = cfg_smoke.calibration
    assert method_for(section, "classical") == section.classical
    assert method_for(section, "deep") == method_for(section, "transfer") == section.deep
    with pytest.raises(ValueError, match="family"):
        method_for(section, "forest")
    y_val, p_val, _, p_test, k = _tree_predictions("ptb", seed=0)
    fitted = fit_from_config(section, "classical", y_val, p_val, list(range(k)))
    assert fitted.method == section.classical and fitted.skipped_reason is None
    strict = section.model_copy(update={"min_val_rows": len(y_val) + 1})
    with caplog.at_level(logging.INFO, logger="ecgops.evaluation.calibration"):
        skipped = fit_from_config(strict, "deep", y_val, p_val, list(range(k)))
    assert "min_val_rows" in skipped.skipped_reason
    assert "min_val_rows" in caplog.text
    np.testing.assert_array_equal(skipped.transform(p_test), p_test)


def test_single_class_validation_is_skipped_not_broken() -> None:
    y_val, p_val, _, p_test, k = _tree_predictions("ptb", seed=0)
    only = y_val == 1
    for method in ("temperature", "isotonic", "sigmoid"):
        calibrator = fit_calibrator(method, y_val[only], p_val[only], list(range(k)))
        assert calibrator.skipped_reason
        np.testing.assert_array_equal(calibrator.transform(p_test), p_test)


def test_no_validation_rows_gives_the_identity() -> None:
    _, _, _, p_test, k = _tree_predictions("ptb", seed=0)
    for method in METHODS:
        for y_val, p_val in ((None, None), (np.array([]), np.empty((0, k)))):
            calibrator = fit_calibrator(method, y_val, p_val, list(range(k)))
            assert calibrator.skipped_reason == (None if method == "none" else "no validation rows")
            np.testing.assert_array_equal(calibrator.transform(p_test), p_test)


def test_bad_arguments_raise_clear_errors() -> None:
    y_val, p_val, _, _, k = _tree_predictions("ptb", seed=0)
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator("platt", y_val, p_val, list(range(k)))
    with pytest.raises(ValueError, match="3 classes"):
        fit_calibrator("isotonic", y_val, p_val, ["a", "b", "c"])
    with pytest.raises(ValueError, match="outside"):
        fit_calibrator("isotonic", y_val, p_val * 2, list(range(k)))
    with pytest.raises(RuntimeError, match="not fitted"):
        Calibrator().transform(p_val)
    fitted = fit_calibrator("sigmoid", y_val, p_val, list(range(k)))
    with pytest.raises(ValueError, match="columns"):
        fitted.transform(np.column_stack([p_val, p_val]))


def test_reliability_comparison_plot(tmp_path: Path) -> None:
    y_val, p_val, y_test, p_test, k = _tree_predictions("mitbih", seed=0)
    calibrator = fit_calibrator("isotonic", y_val, p_val, list(range(k)))
    record = calibration_record(calibrator, {"test": (y_test, p_test)}, N_BINS)
    path = plot_reliability_comparison(record["test"], "mitbih / test", tmp_path / "rel.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_class_with_too_few_validation_rows_keeps_the_raw_probability() -> None:
    """``min_class_rows``: a rare class (MIT-BIH F in a few DS1 records) gets no map."""
    x, y, k = _beats("mitbih")
    train, val, test = _cut(y, seed=0)
    rarest = 4
    val = np.concatenate([val[y[val] != rarest], val[y[val] == rarest][:3]])  # 3 Q beats
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    p_val, p_test = predict_proba_full(model, x[val], k), predict_proba_full(model, x[test], k)
    threshold = 4  # every other class has more validation rows than this
    assert np.bincount(y[val], minlength=k)[:rarest].min() >= threshold
    calibrator = fit_calibrator("sigmoid", y[val], p_val, list("NSVFQ"), min_class_rows=threshold)
    facts = calibrator.describe()
    assert rarest not in facts["calibrated_classes"] and len(facts["calibrated_classes"]) >= 2
    assert "min_class_rows" in facts["inactive_classes"][str(rarest)]
    after = calibrator.transform(p_test)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    assert ((after[:, rarest] > 0) == (p_test[:, rarest] > 0)).all()
