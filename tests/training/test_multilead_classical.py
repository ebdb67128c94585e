"""Classical models on per-lead features of the fixtures' ptb12 table (smoke: leads I, II, V1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config

pytestmark = pytest.mark.slow  # trains and logs models


def run_config(ml_data: Config, workdir: Path) -> Config:
    """The shared tables, with outputs, models and MLflow under ``workdir``."""
    from conftest import RAW_FIXTURES, tables_config

    return tables_config(ml_data, workdir, paths={"raw": str(RAW_FIXTURES)})


def test_lgbm_on_per_lead_features_writes_beat_and_record_figures(ml_data, tmp_path, clean_env):
    import mlflow

    from ecgops.data.multilead_schema import lead_columns
    from ecgops.evaluation.report_multilead import multilead_rows
    from ecgops.paths import metrics_file
    from ecgops.registry.pyfunc import InputError
    from ecgops.training.multilead_classical import train_multilead_classical

    cfg = run_config(ml_data, tmp_path)
    record = train_multilead_classical(cfg, "patient", "lgbm", "all")

    path = metrics_file(cfg, "ptb12", "patient", "lgbm-features-all")
    assert path.is_file() and json.loads(path.read_text())["name"] == "lgbm-features-all"
    assert record["task"] == "ptb12" and record["family"] == "classical"
    assert {"balanced_accuracy", "auroc"} <= set(record["test"])
    assert {"balanced_accuracy", "auroc", "records", "mean", "selected"} <= set(record["record"])
    assert record["model"] == {
        "name": "lgbm",
        "kind": "classical",
        "input": "features",
        "lead_set": "all",
        "leads": ["I", "II", "V1"],
    }
    assert record["input"]["kind"] == "multilead-features"
    assert record["cv"]["folds"] == cfg.splits.cv_folds
    assert record["cv"]["record"]["folds"] == cfg.splits.cv_folds
    assert record["timing"]["fit_seconds"] > 0 and record["timing"]["features_seconds"] > 0
    per_lead = record["fitted"]["n_features_extracted"]
    assert per_lead % 3 == 0 and per_lead > 3  # three leads' blocks
    rows = multilead_rows(json.loads(path.read_text()))  # the report's rows of this run
    assert {r[0] for r in rows} == {"`all` (I, II, V1)"} and {r[1] for r in rows} == {
        "`lgbm-features`"
    }
    assert [r[2] for r in rows][:3] == ["beat", "record mean", "record learned"]
    assert rows[0][8] == f"{record['timing']['fit_seconds']:.1f}"

    run = mlflow.MlflowClient(cfg.tracking_uri).get_run(record["mlflow_run_id"])
    tags = run.data.tags
    assert tags["task"] == "ptb12" and tags["ecgops.leads"] == "I,II,V1"
    assert tags["ecgops.input"] == "multilead-features" and tags["family"] == "classical"
    assert run.info.run_name == "lgbm-features-all-patient"
    model = mlflow.pyfunc.load_model(record["model_uri"])
    df = pd.read_parquet(cfg.path("processed") / "ptb12.parquet").iloc[:4]
    out = model.predict(df)
    assert len(out) == 4
    np.testing.assert_allclose(out[["p_0", "p_1"]].sum(axis=1), 1.0)
    with pytest.raises(InputError, match="V1"):
        model.predict(df.drop(columns=lead_columns(["V1"], 187)))


def test_one_lead_beat_scheme_and_refusals(ml_data, tmp_path, clean_env):
    from ecgops.training.multilead_classical import train_multilead_classical

    cfg = run_config(ml_data, tmp_path)
    record = train_multilead_classical(cfg, "beat", "lgbm", "ii")
    assert record["name"] == "lgbm-features-ii" and record["model"]["leads"] == ["II"]
    assert "cv" not in record and "record" in record  # no grouped folds on the beat scheme
    with pytest.raises(ValueError, match="lead set 'limb6' needs lead"):
        train_multilead_classical(cfg, "beat", "lgbm", "limb6")
    with pytest.raises(ValueError, match="unknown model"):
        train_multilead_classical(cfg, "beat", "cnn", "all")
