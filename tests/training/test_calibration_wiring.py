"""Calibration wired into the training template, on the smoke data.

Every run fits its calibrator on the validation predictions only, records ECE and Brier score
before/after in the metrics file and MLflow, and stores the calibrator in the logged pyfunc,
which then serves ``calibrator.transform`` of the raw model's probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import Config
from ecgops.data.splits import load_split
from ecgops.evaluation.calibration import Calibrator
from ecgops.schema import SIGNAL_COLUMNS, labels
from ecgops.training.classical import ClassicalRun
from ecgops.training.run import TrainingRun

KEYS = ["record", "beat"]


def run_config(smoke_data: Config, workdir: Path, min_val_rows: int = 0) -> Config:
    """The shared smoke tables and splits, with outputs, models and MLflow under ``workdir``.

    ``min_val_rows`` 0: the fixture's 9 PTB validation beats are calibrated (the wiring is
    under test here, not the threshold).
    """
    from conftest import tables_config

    return tables_config(
        smoke_data,
        workdir,
        deep={"num_threads": 1, "epochs": 2, "per_task": {"ptb": {"epochs": 2}}},
        calibration={"min_val_rows": min_val_rows},
    )


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def served_probabilities(cfg: Config, run_id: str, beats: pd.DataFrame) -> tuple[Any, np.ndarray]:
    """The logged pyfunc (unwrapped) and its probabilities for ``beats``."""
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    out = model.predict(beats[SIGNAL_COLUMNS].astype("float64"))
    k = len(cfg.class_names("ptb"))
    return model, out[[f"p_{j}" for j in range(k)]].to_numpy(np.float64)


def check_calibration_outputs(cfg: Config, trainer: TrainingRun, record: dict, method: str):
    """The record's calibration entry, MLflow metrics, CSV bins, figure and model metadata."""
    import mlflow

    cal = record["calibration"]
    assert cal["method"] == method and cal["skipped_reason"] is None
    assert cal["fitted"]["n_fit"] == record["n"]["val"] == trainer.calibrator.n_fit_
    for part in ("val", "test"):
        assert cal[part]["n"] == record["n"][part]
        for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
            assert np.isfinite(cal[part][key]), (part, key)
    # test figures are the served (calibrated) probabilities'
    assert record["test"]["ece"] == pytest.approx(cal["test"]["ece_after"])
    written = json.loads(
        (cfg.path("outputs") / "metrics" / "ptb" / "beat" / f"{trainer.name}.json").read_text()
    )
    assert written["calibration"] == cal

    run = mlflow.get_run(record["mlflow_run_id"])
    for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
        assert run.data.metrics[f"calibration_test_{key}"] == pytest.approx(cal["test"][key])

    base = ("ptb", "beat", trainer.name)
    bins = pd.read_csv(cfg.path("outputs").joinpath("plots", *base, "reliability.csv"))
    assert set(bins["part"]) == {"val", "test"} and set(bins["stage"]) == {"before", "after"}
    for (part, _stage), group in bins.groupby(["part", "stage"]):
        assert group["count"].sum() == record["n"][part]
    assert cfg.path("outputs").joinpath("figures", *base, "calibration_before_after.png").exists()

    info = mlflow.models.get_model_info(f"runs:/{record['mlflow_run_id']}/model")
    assert info.metadata["ecgops"]["calibration"]["method"] == method
    assert info.metadata["ecgops"]["calibration"]["n_fit"] == record["n"]["val"]


def test_a_classical_run_serves_its_sigmoid_calibration(smoke_data, tmp_path, clean_env):
    cfg = run_config(smoke_data, tmp_path)
    trainer = ClassicalRun(cfg, "ptb", "beat", "lr", "raw", "none")
    record = trainer.run()
    assert cfg.calibration.classical == "sigmoid"
    check_calibration_outputs(cfg, trainer, record, "sigmoid")

    test = load_split(cfg, "ptb", "beat")["test"]
    model, served = served_probabilities(cfg, record["mlflow_run_id"], test)
    expected = trainer.calibrator.transform(trainer.proba["test"])
    np.testing.assert_allclose(served, expected, atol=1e-9)
    assert model.unwrap_python_model().calibrator.describe() == trainer.calibrator.describe()
    # validation figures (selection) stay on the raw probabilities
    from ecgops.evaluation.metrics import classification_metrics

    val = load_split(cfg, "ptb", "beat")["val"]
    assert record["val"] == classification_metrics(labels(val), trainer.proba["val"])


def test_too_small_a_validation_part_serves_the_raw_probabilities(smoke_data, tmp_path, clean_env):
    cfg = run_config(smoke_data, tmp_path, min_val_rows=1000)
    trainer = ClassicalRun(cfg, "ptb", "beat", "lr", "raw", "none")
    record = trainer.run()
    cal = record["calibration"]
    assert "min_val_rows" in cal["skipped_reason"] and cal["fitted"]["n_fit"] == 0
    assert cal["test"]["ece_after"] == pytest.approx(cal["test"]["ece_before"])
    test = load_split(cfg, "ptb", "beat")["test"]
    _, served = served_probabilities(cfg, record["mlflow_run_id"], test)
    np.testing.assert_allclose(served, trainer.proba["test"], atol=1e-9)


@pytest.mark.slow
def test_a_deep_run_serves_its_temperature_scaling(smoke_data, tmp_path, clean_env):
    from ecgops.training.deep import DeepRun

    cfg = run_config(smoke_data, tmp_path)
    trainer = DeepRun(cfg, "ptb", "beat", "cnn")
    record = trainer.run()
    check_calibration_outputs(cfg, trainer, record, "temperature")
    assert record["calibration"]["fitted"]["temperature"] == trainer.calibrator.temperature_ > 0

    test = load_split(cfg, "ptb", "beat")["test"]
    _, served = served_probabilities(cfg, record["mlflow_run_id"], test)
    expected = trainer.calibrator.transform(trainer.proba["test"])
    np.testing.assert_allclose(served, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("task", "scheme"),
    [("ptb", "beat"), ("ptb", "patient"), ("mitbih", "beat"), ("mitbih", "patient")],
)
def test_the_calibrator_sees_only_validation_rows(
    smoke_data, tmp_path, clean_env, monkeypatch, task, scheme
):
    """Instrument the predictions (which beats each array belongs to) and the calibrator's fit."""
    cfg = run_config(smoke_data, tmp_path)
    trainer = ClassicalRun(cfg, task, scheme, "lr", "raw", "none")
    predicted: list[tuple[pd.DataFrame, np.ndarray]] = []
    fits: list[tuple[np.ndarray, np.ndarray]] = []
    predict, fit = trainer.predict, Calibrator.fit

    def recording_predict(fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        proba = predict(fitted, beats, timed)
        predicted.append((beats[KEYS].reset_index(drop=True), proba))
        return proba

    def recording_fit(self: Calibrator, y_val: Any, proba_val: Any) -> Calibrator:
        fits.append((np.asarray(y_val), np.asarray(proba_val)))
        return fit(self, y_val, proba_val)

    monkeypatch.setattr(trainer, "predict", recording_predict)
    monkeypatch.setattr(Calibrator, "fit", recording_fit)
    trainer.run()

    parts = load_split(cfg, task, scheme)
    val_keys = parts["val"][KEYS].reset_index(drop=True)
    assert len(fits) == 1 and trainer.calibrator.n_fit_ == len(parts["val"])
    y_seen, p_seen = fits[0]
    sources = [beats for beats, proba in predicted if proba is p_seen]
    assert len(sources) == 1, "the calibrator must see the array predicted for one part"
    assert sources[0].equals(val_keys)
    np.testing.assert_array_equal(y_seen, labels(parts["val"]))
    seen = set(map(tuple, sources[0].to_numpy()))
    assert not seen & set(map(tuple, parts["test"][KEYS].to_numpy()))
    assert not seen & set(map(tuple, parts["train"][KEYS].to_numpy()))


def test_a_pyfunc_pickled_before_calibration_still_predicts(smoke_data) -> None:
    """A ``BeatClassifier`` without the ``calibrator`` attribute serves its raw probabilities."""
    from sklearn.linear_model import LogisticRegression

    from ecgops.evaluation.calibration import fit_calibrator
    from ecgops.registry.pyfunc import BeatClassifier
    from ecgops.schema import signals

    parts = load_split(smoke_data, "ptb", "beat")
    lr = LogisticRegression(max_iter=200).fit(signals(parts["train"]), labels(parts["train"]))
    names = smoke_data.class_names("ptb")
    raw = BeatClassifier(lr, "ptb", names).predict_proba(signals(parts["test"]))
    cal = fit_calibrator(
        "sigmoid", labels(parts["val"]), lr.predict_proba(signals(parts["val"])), names
    )
    model = BeatClassifier(lr, "ptb", names, calibrator=cal)
    served = model.predict_proba(signals(parts["test"]))
    np.testing.assert_allclose(served, cal.transform(raw))
    del model.calibrator  # the state of a model pickled before calibration existed
    np.testing.assert_allclose(model.predict_proba(signals(parts["test"])), raw)
