"""The training-run template: split, subsample, fit, evaluate, CV and write, on real beats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ecgops.config import Config
from ecgops.data.splits import has_folds, iter_patient_folds, load_split
from ecgops.io import read_json
from ecgops.schema import labels, signals
from ecgops.training.run import CV_METRICS, TrainingRun, cv_summary, same_parts


def run_config(smoke_data: Config, workdir: Path) -> Config:
    """The shared smoke tables and splits, with outputs and MLflow under ``workdir``."""
    from conftest import tables_config

    return tables_config(smoke_data, workdir)


class LogisticRun(TrainingRun):
    """A minimal trainer: logistic regression on raw beats, every fit recorded."""

    family = "classical"

    def __init__(self, cfg: Config, task: str, scheme: str, max_rows: int, reuse: bool) -> None:
        super().__init__(cfg, task, scheme)
        self.max_rows = max_rows
        self.reuse_identical_fold = reuse
        self.fits: list[tuple[int | None, int]] = []
        self.finished = False

    @property
    def name(self) -> str:
        return "logistic"

    def subsample(self, train: pd.DataFrame) -> pd.DataFrame:
        return train.iloc[: self.max_rows].reset_index(drop=True)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        self.fits.append((fold, len(train)))
        return LogisticRegression(max_iter=200).fit(signals(train), labels(train))

    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        proba = np.zeros((len(beats), len(self.cfg.class_names(self.task))))
        proba[:, fitted.classes_] = fitted.predict_proba(signals(beats))
        return proba

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        self.finished = True


def test_has_folds_follows_the_split_table(smoke_data: Config):
    assert has_folds(smoke_data, "ptb", "patient")
    assert not has_folds(smoke_data, "ptb", "beat")
    assert not has_folds(smoke_data, "mitbih", "patient")  # DS1/DS2, no folds
    assert not has_folds(smoke_data, "mitbih", "beat")


def test_a_split_without_folds_trains_once_and_writes_its_metrics(smoke_data, tmp_path, clean_env):
    cfg = run_config(smoke_data, tmp_path)
    trainer = LogisticRun(cfg, "mitbih", "beat", max_rows=120, reuse=False)
    record = trainer.run()
    assert trainer.fits == [(None, 120)] and trainer.finished
    assert "cv" not in record and record["n"]["train"] == 120
    written = read_json(cfg.path("outputs") / "metrics" / "mitbih" / "beat" / "logistic.json")
    assert written["test"] == record["test"] and written["family"] == "classical"
    assert {"fit_seconds", "predict_seconds", "predict_beats_per_s"} <= set(record["timing"])
    assert written["val"] == record["val"]


@pytest.mark.parametrize("reuse", [False, True])
def test_a_split_with_folds_cross_validates_every_fold(smoke_data, tmp_path, clean_env, reuse):
    cfg = run_config(smoke_data, tmp_path)
    n_folds = len(list(iter_patient_folds(cfg, "ptb")))
    trainer = LogisticRun(cfg, "ptb", "patient", max_rows=10_000, reuse=reuse)
    record = trainer.run()
    folds_fitted = [fold for fold, _ in trainer.fits if fold is not None]
    # fold 0 is the patient split itself: reused when the trainer allows, refitted otherwise
    assert folds_fitted == (list(range(1, n_folds)) if reuse else list(range(n_folds)))
    assert record["cv"]["folds"] == n_folds == len(trainer.fold_scores)
    # the fold-0 scores are the main test scores (same beats, same deterministic fit)
    main_test = {k: record["test"][k] for k in CV_METRICS}
    assert {k: trainer.fold_scores[0][k] for k in CV_METRICS} == pytest.approx(main_test)


def test_cv_summary_is_mean_and_sample_std():
    folds = [{m: v for m in CV_METRICS} for v in (0.5, 0.7, 0.9)]
    out = cv_summary(folds)
    assert out["folds"] == 3 and out["balanced_accuracy_mean"] == pytest.approx(0.7)
    assert out["auroc_std"] == pytest.approx(0.2)  # ddof=1
    assert out["balanced_accuracy_folds"] == [0.5, 0.7, 0.9]
    assert cv_summary(folds[:1])["accuracy_std"] == 0.0


def test_same_parts_compares_beats_not_objects(smoke_data: Config):
    parts = load_split(smoke_data, "ptb", "patient")
    train, val, test = next(iter_patient_folds(smoke_data, "ptb"))
    fold0 = {"train": train, "val": val, "test": test}
    assert same_parts(parts, fold0)
    fewer = {**parts, "train": parts["train"].iloc[1:]}
    assert not same_parts(parts, fewer)
