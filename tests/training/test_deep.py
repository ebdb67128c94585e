"""train_deep on the smoke data: metrics files, MLflow run, a loadable pyfunc, CV, attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import Config
from ecgops.schema import SIGNAL_COLUMNS, labels, signals

pytestmark = pytest.mark.slow  # each test trains and logs a model (~10 s)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def deep_config(smoke_data: Config, workdir: Path, **deep) -> Config:
    """The shared smoke tables and splits, with outputs, models and MLflow under ``workdir``."""
    from conftest import tables_config

    return tables_config(
        smoke_data,
        workdir,
        deep={"num_threads": 1, "epochs": 2, "per_task": {"ptb": {"epochs": 2}}, **deep},
    )


def test_train_deep_lands_in_mlflow_with_a_loadable_model(smoke_data, tmp_path, clean_env):
    import mlflow

    from ecgops.data.splits import load_split
    from ecgops.training.deep import train_deep

    cfg = deep_config(smoke_data, tmp_path)
    record = train_deep(cfg, "ptb", "beat", "cnn")

    metrics_file = cfg.path("outputs") / "metrics" / "ptb" / "beat" / "cnn.json"
    assert metrics_file.exists()
    assert record["family"] == "deep" and record["name"] == "cnn"
    assert set(record["test"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc"}
    assert record["timing"]["train_beats_per_s"] > 0
    assert record["timing"]["predict_beats_per_s"] > 0
    assert record["training"]["epochs_run"] == 2
    assert (
        cfg.path("models") / "checkpoints" / "ptb" / "beat" / "cnn" / "main" / "last.pt"
    ).exists()

    client = mlflow.MlflowClient(cfg.tracking_uri)
    run = client.get_run(record["mlflow_run_id"])
    assert run.info.run_name == "cnn-beat"
    assert run.data.tags["family"] == "deep" and run.data.tags["split_scheme"] == "beat"
    history = client.get_metric_history(run.info.run_id, "epoch_val_balanced_accuracy")
    assert [m.step for m in history] == [0, 1]
    assert "test_balanced_accuracy" in run.data.metrics

    # the registry form: raw 187-sample rows in, the same test accuracy out
    test = load_split(cfg, "ptb", "beat")["test"]
    model = mlflow.pyfunc.load_model(record["model_uri"])
    out = model.predict(pd.DataFrame(signals(test).astype(np.float64), columns=SIGNAL_COLUMNS))
    assert list(out.columns) == ["pred", "pred_name", "p_0", "p_1"]
    assert np.allclose(out[["p_0", "p_1"]].sum(axis=1), 1.0)
    assert (out["pred"] == labels(test)).mean() == pytest.approx(record["test"]["accuracy"])

    # a rerun finds the finished checkpoint: no training, same metrics (deterministic)
    again = train_deep(cfg, "ptb", "beat", "cnn")
    assert again["training"]["resumed_from_epoch"] == 2
    assert again["test"] == record["test"]


def test_same_seed_same_metrics_from_scratch(smoke_data, tmp_path, clean_env):
    from ecgops.training.deep import train_deep

    first = train_deep(deep_config(smoke_data, tmp_path / "a"), "mitbih", "beat", "rescnn")
    second = train_deep(deep_config(smoke_data, tmp_path / "b"), "mitbih", "beat", "rescnn")
    assert second["training"]["resumed_from_epoch"] == 0
    assert first["test"] == second["test"] and first["val"] == second["val"]


def test_transformer_on_the_patient_split_has_cv_and_attention_maps(
    smoke_data, tmp_path, clean_env
):
    import mlflow

    from ecgops.training.deep import train_deep

    cfg = deep_config(smoke_data, tmp_path, per_task={"ptb": {"epochs": 1}})
    record = train_deep(cfg, "ptb", "patient", "transformer")
    assert record["cv"]["folds"] == cfg.splits.cv_folds
    assert len(record["cv"]["balanced_accuracy_folds"]) == cfg.splits.cv_folds
    assert 0.0 <= record["cv"]["balanced_accuracy_mean"] <= 1.0
    fdir = cfg.path("outputs") / "figures" / "ptb" / "patient" / "transformer"
    assert (fdir / "attention_profile.png").exists()
    assert len(list(fdir.glob("attention_*_*.png"))) >= 2
    client = mlflow.MlflowClient(cfg.tracking_uri)
    logged = [f.path for f in client.list_artifacts(record["mlflow_run_id"], "figures/attention")]
    assert "figures/attention/attention_profile.png" in logged
