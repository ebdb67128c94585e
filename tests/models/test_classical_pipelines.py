"""Classical pipelines: structure, SMOTE confined to training rows, raw-beat prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

from ecgops.config import Config
from ecgops.models.classical import (
    ClassAwareSMOTE,
    build_pipeline,
    describe_fit,
    head_and_tail,
    predict_proba_full,
)
from ecgops.schema import labels, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def ptb_parts() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real PTB fixture beats: an imbalanced training part (so SMOTE has work) and a test part."""
    df = pd.read_parquet(FIXTURES / "beats_ptb.parquet")
    x, y = signals(df), labels(df)
    rng = np.random.default_rng(0)
    healthy, mi = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
    train = np.r_[healthy[:40], mi[:12]]
    test = np.r_[healthy[40:], mi[12:]]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


@pytest.fixture
def smote_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Record (input X, input y, resampled X) of every SMOTE fit in this process."""
    calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = ClassAwareSMOTE._fit_resample

    def recording(self, X, y):
        x_out, y_out = original(self, X, y)
        calls.append((np.array(X, copy=True), np.array(y, copy=True), np.array(x_out, copy=True)))
        return x_out, y_out

    monkeypatch.setattr(ClassAwareSMOTE, "_fit_resample", recording)
    return calls


def _rows(a: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(r, dtype=np.float64).tobytes() for r in a}


def _on_a_training_segment(s: np.ndarray, members: np.ndarray, tol: float = 1e-5) -> bool:
    """Whether ``s`` = a + t (b - a), 0 <= t <= 1, for training rows a, b (SMOTE's rule)."""
    for a in members:
        d = members - a
        norms = (d * d).sum(axis=1)
        ok = norms > 0
        t = ((s - a) * d).sum(axis=1)[ok] / norms[ok]
        resid = np.linalg.norm((s - a) - t[:, None] * d[ok], axis=1)
        if np.any((resid < tol) & (t >= -tol) & (t <= 1 + tol)):
            return True
        if np.allclose(s, a, atol=tol):
            return True
    return False


def test_pipeline_steps_follow_model_input_and_imbalance(
    cfg_smoke: Config, cfg_smoke_factory
) -> None:
    steps = lambda *a: [n for n, _ in build_pipeline(cfg_smoke, *a).steps]  # noqa: E731
    assert steps("rf", "raw", 2, "smote") == ["smote", "clf"]
    assert steps("lgbm", "raw", 2, "none") == ["clf"]
    assert steps("lgbm", "features", 5, "class_weight") == ["features", "impute", "select", "clf"]
    weighted = build_pipeline(cfg_smoke, "lgbm", "features", 5, "class_weight")
    assert weighted.named_steps["clf"].class_weight == "balanced"
    assert weighted.named_steps["clf"].objective == "multiclass"
    lr = build_pipeline(cfg_smoke, "lr", "raw", 2, "smote").named_steps["clf"]
    assert isinstance(lr, GridSearchCV)
    assert [n for n, _ in lr.estimator.steps] == ["scale", "smote", "lr"]
    assert lr.estimator.named_steps["lr"].solver == "saga"
    lr_cw = build_pipeline(cfg_smoke, "lr", "raw", 2, "class_weight").named_steps["clf"]
    assert [n for n, _ in lr_cw.estimator.steps] == ["scale", "lr"]
    assert lr_cw.estimator.named_steps["lr"].class_weight == "balanced"
    assert set(lr_cw.param_grid) == {"lr__C", "lr__l1_ratio"}
    binned = build_pipeline(
        cfg_smoke_factory(classical={"lgbm": {"max_bin": 63}}), "lgbm", "raw", 2
    )
    assert binned.named_steps["clf"].max_bin == 63  # the params' sizes reach the estimators
    assert weighted.named_steps["clf"].max_bin == 255  # LightGBM's default unless set
    stopped = build_pipeline(cfg_smoke_factory(classical={"lr": {"tol": 1e-3}}), "lr", "raw", 2)
    assert stopped.named_steps["clf"].estimator.named_steps["lr"].tol == 1e-3
    with pytest.raises(ValueError, match="unknown model"):
        build_pipeline(cfg_smoke, "svm", "raw", 2)
    with pytest.raises(ValueError, match="unknown imbalance"):
        build_pipeline(cfg_smoke, "rf", "raw", 2, "oversample")


def test_smote_sees_only_training_rows_and_never_runs_at_predict(
    cfg_smoke: Config, ptb_parts, smote_calls
) -> None:
    (x_train, y_train), (x_test, _) = ptb_parts["train"], ptb_parts["test"]
    pipe = build_pipeline(cfg_smoke, "rf", "raw", 2, "smote").fit(x_train, y_train)
    assert len(smote_calls) == 1
    seen_x, seen_y, resampled = smote_calls[0]
    assert _rows(seen_x) == _rows(x_train)  # exactly the training rows ...
    assert not _rows(resampled) & _rows(x_test)  # ... and no test row, real or synthetic
    synthetic = resampled[len(seen_x) :]
    assert len(synthetic) == (y_train == 0).sum() - (y_train == 1).sum()
    minority = x_train[y_train == 1].astype(np.float64)
    assert all(_on_a_training_segment(s, minority) for s in synthetic)
    proba = pipe.predict_proba(x_test)
    assert proba.shape == (len(x_test), 2)
    assert len(smote_calls) == 1  # predicting does not resample


def test_smote_on_features_never_sees_test_features(cfg_smoke_factory, ptb_parts, smote_calls):
    cfg = cfg_smoke_factory(features={"selection": "none"})  # all features: rows are distinct
    (x_train, y_train), (x_test, _) = ptb_parts["train"], ptb_parts["test"]
    pipe = build_pipeline(cfg, "lgbm", "features", 2, "smote").fit(x_train, y_train)
    assert len(smote_calls) == 1
    seen_x, _, resampled = smote_calls[0]
    assert len(seen_x) == len(x_train)
    test_features = pipe[:-2].transform(x_test)  # features -> impute, as SMOTE gets them
    assert test_features.shape[1] == seen_x.shape[1]
    assert not _rows(resampled) & _rows(test_features)
    pipe.predict_proba(x_test)
    assert len(smote_calls) == 1


def test_lr_smote_runs_inside_the_inner_cv_folds(cfg_smoke_factory, ptb_parts, smote_calls):
    cfg = cfg_smoke_factory(classical={"n_jobs": 1})  # one process, so the spy sees every call
    (x_train, y_train), (x_test, _) = ptb_parts["train"], ptb_parts["test"]
    pipe = build_pipeline(cfg, "lr", "raw", 2, "smote").fit(x_train, y_train)
    n_grid = len(cfg.classical.lr.Cs) * len(cfg.classical.lr.l1_ratios)
    assert len(smote_calls) == n_grid * cfg.classical.lr.cv + 1  # each inner fold + the refit
    sizes = sorted(len(c[0]) for c in smote_calls)
    assert sizes[-1] == len(x_train)  # the refit on the whole training part
    assert all(s < len(x_train) for s in sizes[:-1])  # inner folds: never the held-out fold
    pipe.predict_proba(x_test)
    assert len(smote_calls) == n_grid * cfg.classical.lr.cv + 1
    facts = describe_fit(pipe)
    assert facts["lr_best_C"] in cfg.classical.lr.Cs


def test_class_aware_smote_handles_rare_classes() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((23, 4))
    y = np.r_[np.zeros(20, int), [1, 1], [2]]
    x_out, y_out = ClassAwareSMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    counts = np.bincount(y_out)
    assert counts[0] == 20 and counts[1] == 20  # k lowered to 1 for two beats
    assert counts[2] == 1  # a single beat cannot be interpolated


def test_fitting_on_precomputed_features_gives_a_raw_beat_predictor(cfg_smoke, ptb_parts):
    (x_train, y_train), (x_test, _) = ptb_parts["train"], ptb_parts["test"]
    pipe = build_pipeline(cfg_smoke, "rf", "features", 2, "class_weight")
    head, tail = head_and_tail(pipe)
    assert head is not None
    tail.fit(head.transform(x_train), y_train)
    from_raw = pipe.predict_proba(x_test)
    assert np.array_equal(from_raw, tail.predict_proba(head.transform(x_test)))
    reference = build_pipeline(cfg_smoke, "rf", "features", 2, "class_weight").fit(x_train, y_train)
    assert np.array_equal(from_raw, reference.predict_proba(x_test))


def test_probabilities_cover_classes_missing_from_training(cfg_smoke, ptb_parts) -> None:
    x, _ = ptb_parts["train"]
    y = np.where(np.arange(len(x)) % 2 == 0, 0, 2)
    pipe = build_pipeline(cfg_smoke, "rf", "raw", 3, "none").fit(x, y)
    proba = predict_proba_full(pipe, x[:5], 3)
    assert proba.shape == (5, 3)
    assert np.all(proba[:, 1] == 0)
    assert np.allclose(proba.sum(axis=1), 1.0)
