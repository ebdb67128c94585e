"""The gate's bootstrap over patients / records (ecgops/registry/gate.py), on fixture beats."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_mlflow import fit_lr, fit_prior, xy

from ecgops.config import BootstrapConfig
from ecgops.evaluation.metrics import classification_metrics
from ecgops.registry.gate import CONFUSION_METRICS, compare, metric_from_confusion

SETTINGS = BootstrapConfig(n=200, alpha=0.05, seed=7)


@pytest.fixture(scope="module")
def scored(fixture_parts) -> dict:
    """MIT-BIH fixture test beats with an LR's and a prior model's probabilities."""
    data = fixture_parts["mitbih"]
    x, y = xy(data["test"])
    return {
        "y": y,
        "groups": data["test"]["record"].astype(str).to_numpy(),
        "lr": fit_lr(data["train"]).predict_proba(x),
        "prior": fit_prior(data["train"]).predict_proba(x),
    }


@pytest.mark.parametrize("metric", CONFUSION_METRICS)
def test_confusion_metrics_match_classification_metrics(scored, metric: str) -> None:
    from ecgops.evaluation.metrics import confusion

    cm = confusion(scored["y"], scored["lr"])
    expected = classification_metrics(scored["y"], scored["lr"])[metric]
    assert metric_from_confusion(cm, metric) == pytest.approx(expected)


def test_intervals_are_paired_seeded_and_hold_the_estimate(scored) -> None:
    y, groups = scored["y"], scored["groups"]
    a = compare(y, groups, scored["lr"], scored["prior"], "balanced_accuracy", SETTINGS)
    b = compare(y, groups, scored["lr"], scored["prior"], "balanced_accuracy", SETTINGS)
    assert a == b  # fixed seed
    assert a.groups == len(set(groups)) and a.resamples == SETTINGS.n and a.level == 0.95
    for i in (a.challenger, a.champion, a.difference):
        assert i.low <= i.high
    assert a.challenger.estimate == pytest.approx(
        classification_metrics(y, scored["lr"])["balanced_accuracy"]
    )
    chance = 1 / len(set(y))  # the prior always says the majority class
    assert a.champion.estimate == pytest.approx(chance)
    assert a.difference.estimate == pytest.approx(a.challenger.estimate - chance)
    same = compare(y, groups, scored["lr"], scored["lr"], "balanced_accuracy", SETTINGS)
    assert (same.difference.low, same.difference.high) == (0.0, 0.0)  # paired resamples


def test_one_group_gives_a_point_interval_and_probability_metrics_work(scored) -> None:
    y = scored["y"]
    one = compare(y, np.zeros(len(y)), scored["lr"], None, "balanced_accuracy", SETTINGS)
    assert one.champion is None and one.difference is None
    assert one.challenger.low == one.challenger.high == one.challenger.estimate
    auroc = compare(y, scored["groups"], scored["lr"], scored["prior"], "auroc", SETTINGS)
    assert auroc.challenger.estimate == pytest.approx(
        classification_metrics(y, scored["lr"])["auroc"]
    )
    assert auroc.challenger.low <= auroc.challenger.high
    with pytest.raises(ValueError, match="gate data"):
        compare(y[:0], y[:0], scored["lr"][:0], None, "auroc", SETTINGS)
