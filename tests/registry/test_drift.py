"""Drift statistics and the PSI guard, on real fixture beats."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_mlflow import parts, xy

from ecgops.registry import drift


@pytest.fixture(scope="module")
def ptb_train() -> tuple[np.ndarray, np.ndarray]:
    return xy(parts("ptb")["train"])


def test_reference_stats_are_shares_over_fixed_bins(ptb_train) -> None:
    x, y = ptb_train
    stats = drift.reference_stats(x, y, n_classes=2, bins=10)
    assert stats["n"] == len(x) and stats["bins"] == 10
    for name in ("mean", "std", "length"):
        assert len(stats["hist"][name]) == 10
        assert sum(stats["hist"][name]) == pytest.approx(1.0, abs=1e-5)
    assert stats["class_balance"] == pytest.approx(list(np.bincount(y) / len(y)), abs=1e-6)
    assert drift.from_tag(drift.to_tag(stats)) == stats
    assert len(drift.to_tag(stats)) < 5000  # fits an MLflow tag


def test_same_data_has_zero_psi_and_passes(ptb_train) -> None:
    x, y = ptb_train
    stats = drift.reference_stats(x, y, 2, 10)
    report = drift.compare(stats, stats, threshold=0.25)
    assert report.passed and max(report.psi.values()) == 0.0


def test_rescaled_beats_drift_beyond_the_threshold(ptb_train) -> None:
    x, y = ptb_train
    ref = drift.reference_stats(x, y, 2, 10)
    gain_changed = drift.reference_stats(x * 0.4, y, 2, 10)
    report = drift.compare(ref, gain_changed, threshold=0.25)
    assert not report.passed
    assert report.psi["mean"] > 0.25 and report.psi["std"] > 0.25
    assert "drifted" in report.message and "drift_threshold 0.25" in report.message


def test_class_balance_shift_alone_is_caught(ptb_train) -> None:
    x, y = ptb_train
    ref = drift.reference_stats(x, y, 2, 10)
    shifted = dict(ref, class_balance=[0.95, 0.05])
    report = drift.compare(ref, shifted, threshold=0.25)
    assert not report.passed and "class_balance" in report.message


def test_psi_is_symmetric_and_finite_with_empty_bins() -> None:
    p, q = [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]
    assert drift.psi(p, q) == pytest.approx(drift.psi(q, p))
    assert np.isfinite(drift.psi(p, q)) and drift.psi(p, p) == 0.0


def test_statistics_with_other_bins_are_not_compared(ptb_train) -> None:
    x, y = ptb_train
    report = drift.compare(
        drift.reference_stats(x, y, 2, 10), drift.reference_stats(x, y, 2, 20), 0.25
    )
    assert not report.passed and "different bins" in report.message
