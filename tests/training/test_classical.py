"""Classical training: runs land in MLflow with model and metrics, reproducibly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config
from ecgops.features.tsfeatures import FeatureExtractor, build_features
from ecgops.schema import SIGNAL_COLUMNS, labels, signals
from ecgops.training.classical import (
    FeatureLookup,
    compare_imbalance,
    stratified_subsample,
    train_classical,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _with_ptb(cfg: Config) -> Config:
    """Put the real PTB fixture beats in the config's processed folder and split them."""
    from ecgops.data.splits import make_splits

    processed = cfg.path("processed")
    processed.mkdir(parents=True, exist_ok=True)
    (processed / "ptb.parquet").write_bytes((FIXTURES / "beats_ptb.parquet").read_bytes())
    make_splits(cfg, "ptb")
    return cfg


@pytest.fixture
def ptb_cfg(cfg_smoke: Config) -> Config:
    return _with_ptb(cfg_smoke)


def _no_timing(record: dict) -> dict:
    drop = {"timing", "mlflow_run_id"}
    return {k: v for k, v in record.items() if k not in drop}


def test_a_run_lands_in_mlflow_with_its_model_and_metrics(ptb_cfg: Config) -> None:
    import mlflow

    record = train_classical(ptb_cfg, "ptb", "patient", "lgbm", "features")
    assert set(record["test"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc"}
    assert record["cv"]["folds"] == ptb_cfg.splits.cv_folds
    assert {"balanced_accuracy_mean", "balanced_accuracy_std", "auroc_mean"} <= set(record["cv"])
    assert record["timing"]["predict_beats_per_s"] > 0
    metrics_file = ptb_cfg.path("outputs") / "metrics" / "ptb" / "patient" / "lgbm-features.json"
    assert json.loads(metrics_file.read_text())["mlflow_run_id"] == record["mlflow_run_id"]

    mlflow.set_tracking_uri(ptb_cfg.tracking_uri)
    run = mlflow.get_run(record["mlflow_run_id"])
    assert run.info.run_name == "lgbm-features-patient"
    assert mlflow.get_experiment(run.info.experiment_id).name == ptb_cfg.experiment_name("ptb")
    assert run.data.params["imbalance"] == ptb_cfg.classical.imbalance
    assert run.data.params["input"] == "features"
    assert run.data.params["lgbm.n_estimators"] == str(ptb_cfg.classical.lgbm.n_estimators)
    assert run.data.tags["split_scheme"] == "patient"
    assert {"git_commit", "data_version"} <= set(run.data.tags)
    assert run.data.metrics["test_balanced_accuracy"] == pytest.approx(
        record["test"]["balanced_accuracy"]
    )
    assert "cv_balanced_accuracy_mean" in run.data.metrics

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    beats = pd.read_parquet(FIXTURES / "beats_ptb.parquet")
    out = model.predict(beats[SIGNAL_COLUMNS].astype("float64").head(7))
    assert list(out.columns) == ["pred", "pred_name", "p_0", "p_1"]
    assert np.allclose(out[["p_0", "p_1"]].sum(axis=1), 1.0)
    assert set(out["pred_name"]) <= {"healthy", "MI"}


def test_same_seed_gives_identical_metrics(ptb_cfg: Config) -> None:
    first = train_classical(ptb_cfg, "ptb", "beat", "lr", "features")
    second = train_classical(ptb_cfg, "ptb", "beat", "lr", "features")
    assert first["mlflow_run_id"] != second["mlflow_run_id"]
    assert _no_timing(first) == _no_timing(second)


def test_cached_features_are_used_and_agree_with_the_extractor(ptb_cfg: Config) -> None:
    extractor = FeatureExtractor.from_config(ptb_cfg)
    assert not FeatureLookup(ptb_cfg, "ptb", extractor).cached
    build_features(ptb_cfg, "ptb", progress=False)
    lookup = FeatureLookup(ptb_cfg, "ptb", extractor)
    assert lookup.cached
    x = signals(pd.read_parquet(FIXTURES / "beats_ptb.parquet"))[::-3]
    assert np.array_equal(lookup(x), extractor.transform(x), equal_nan=True)
    new_beat = np.clip(x[:1] * 0.5, 0, 1)  # not in the table: computed
    assert np.array_equal(lookup(new_beat), extractor.transform(new_beat), equal_nan=True)


def test_stratified_subsample_keeps_every_class_in_proportion() -> None:
    df = pd.DataFrame({"label": np.r_[np.zeros(900, int), np.ones(90, int), [2] * 10]})
    sub = stratified_subsample(df, 100, seed=0)
    assert len(sub) == 100
    assert np.bincount(labels(sub)).tolist() == [90, 9, 1]
    assert sub.equals(stratified_subsample(df, 100, seed=0))
    assert len(stratified_subsample(df, None, seed=0)) == 1000


def test_compare_imbalance_reports_each_variant_and_a_winner(ptb_cfg: Config) -> None:
    result = compare_imbalance(ptb_cfg, "ptb", "beat", "rf", "raw")
    assert set(result["variants"]) == {"smote", "class_weight", "none"}
    assert result["winner"] in result["variants"]
    assert result["selected_on"] == "val.balanced_accuracy"
    best = result["variants"][result["winner"]]["val"]["balanced_accuracy"]
    assert best == max(v["val"]["balanced_accuracy"] for v in result["variants"].values())
    written = ptb_cfg.path("outputs") / "benchmarks" / "imbalance-ptb-beat-rf-raw.json"
    assert json.loads(written.read_text())["winner"] == result["winner"]
