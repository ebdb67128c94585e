"""Multi-lead nets on the fixtures' ptb12 table (3 leads): nets, trainer, record level, pyfunc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import Config

pytestmark = pytest.mark.slow  # trains and logs models


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_config(ml_data: Config, workdir: Path, **deep) -> Config:
    """The shared tables, with outputs, models and MLflow under ``workdir``."""
    from conftest import RAW_FIXTURES, tables_config

    return tables_config(
        ml_data,
        workdir,
        paths={"raw": str(RAW_FIXTURES)},
        deep={"num_threads": 1, "epochs": 2, "per_task": {"ptb": {"epochs": 2}}, **deep},
    )


# ---- nets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn", "rescnn", "transformer"])
def test_multilead_nets_read_leads_side_by_side_or_stacked(name: str) -> None:
    from ecgops.models.nets import build_net

    torch.manual_seed(0)
    net = build_net(name, 2, in_channels=3).eval()
    x = torch.rand(4, 3, 187)
    flat = net(x.reshape(4, -1))
    assert flat.shape == (4, 2)
    torch.testing.assert_close(flat, net(x))
    with pytest.raises(ValueError, match="3 lead"):
        net(torch.rand(4, 187 * 3 + 1))


@pytest.mark.parametrize("name", ["cnn", "rescnn", "transformer"])
def test_one_channel_nets_keep_their_weights_and_outputs(name: str) -> None:
    from ecgops.models.nets import build_net

    torch.manual_seed(0)
    default = build_net(name, 2)
    torch.manual_seed(0)
    explicit = build_net(name, 2, in_channels=1)
    a, b = default.state_dict(), explicit.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(3, 187)
    torch.testing.assert_close(default.eval()(x), explicit.eval()(x))


def test_multilead_transformer_ignores_padding_in_every_lead() -> None:
    from ecgops.models.nets import build_net

    torch.manual_seed(0)
    net = build_net("transformer", 2, in_channels=2, patch=4).eval()
    x = torch.rand(2, 2, 187)
    x[:, :, 150:] = 0.0
    y = x.clone()
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, :, 150:] = True
    y[:, :, 150:] = 5.0  # padded values changed: same output given the mask
    torch.testing.assert_close(net(x), net(y, mask=mask))


# ---- record level -------------------------------------------------------------------------------


def test_record_features_summarise_each_record_in_order() -> None:
    from ecgops.training.record_level import record_features, record_labels

    p1 = np.array([0.2, 0.4, 0.9, 0.7, 0.8])
    keys = np.array(["b", "b", "a", "a", "a"])
    order, f = record_features(p1, keys, [0.5])
    assert order.tolist() == ["b", "a"]
    np.testing.assert_allclose(f[:, 0], [0.3, 0.8])  # mean
    np.testing.assert_allclose(f[:, 2], [0.3, 0.8])  # median
    np.testing.assert_allclose(f[:, 3], [0.0, 1.0])  # share of beats >= 0.5
    np.testing.assert_allclose(f[:, 4], np.log([2, 3]))
    assert record_labels(np.array([0, 0, 1, 1, 0]), keys).tolist() == [0, 1]


def test_record_block_fits_on_validation_and_scores_test_records(cfg_smoke: Config) -> None:
    from ecgops.training.record_level import record_block

    rng = np.random.default_rng(0)

    def cut(n_records: int) -> tuple:
        y_rec = np.arange(n_records) % 2
        keys = np.repeat([f"r{i}" for i in range(n_records)], 5)
        y = np.repeat(y_rec, 5)
        p1 = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.1, len(y)), 0, 1)
        return np.column_stack([1 - p1, p1]), y, keys

    block = record_block(cut(12), cut(8), cfg_smoke.multilead.record, cfg_smoke.seed)
    assert block["records"] == 8 and block["val_records"] == 12
    assert block["selected"] in ("mean", "learned")
    assert set(block["selection_cv"]) == {"mean", "learned"}
    assert block["mean"]["auroc"] == 1.0 and block["mean"]["balanced_accuracy"] == 1.0
    assert 0.0 <= block["learned"]["balanced_accuracy"] <= 1.0
    assert block["balanced_accuracy"] == block[block["selected"]]["balanced_accuracy"]


# ---- the trainer --------------------------------------------------------------------------------


def test_multilead_run_trains_logs_and_serves_named_leads(ml_data, tmp_path, clean_env):
    import mlflow

    from ecgops.data.multilead_schema import lead_columns
    from ecgops.registry.pyfunc import InputError
    from ecgops.training.multilead import train_multilead

    cfg = run_config(ml_data, tmp_path)
    record = train_multilead(cfg, "beat", "cnn", "all")

    path = cfg.path("outputs") / "metrics" / "ptb12" / "beat" / "cnn-all.json"
    assert path.is_file() and record["name"] == "cnn-all" and record["task"] == "ptb12"
    assert record["model"]["leads"] == ["I", "II", "V1"]
    assert record["model"]["params"]["in_channels"] == 3
    assert {"balanced_accuracy", "auroc", "records", "mean", "selected"} <= set(record["record"])
    assert (cfg.path("models") / "checkpoints/ptb12/beat/cnn-all/main/last.pt").is_file()

    run = mlflow.MlflowClient(cfg.tracking_uri).get_run(record["mlflow_run_id"])
    assert run.data.tags["task"] == "ptb12" and run.data.tags["ecgops.leads"] == "I,II,V1"
    model = mlflow.pyfunc.load_model(record["model_uri"])
    df = pd.read_parquet(cfg.path("processed") / "ptb12.parquet").iloc[:4]
    out = model.predict(df)
    assert list(out.columns[:2]) == ["pred", "pred_name"] and len(out) == 4
    np.testing.assert_allclose(out[["p_0", "p_1"]].sum(axis=1), 1.0)
    assert model.metadata.metadata["ecgops"]["leads"] == ["I", "II", "V1"]
    with pytest.raises(InputError, match="V1"):
        model.predict(df.drop(columns=lead_columns(["V1"], 187)))


def test_multilead_run_on_one_lead_and_cross_validates_records(ml_data, tmp_path, clean_env):
    from ecgops.training.multilead import train_multilead

    cfg = run_config(ml_data, tmp_path)
    record = train_multilead(cfg, "patient", "cnn", "ii")
    assert record["model"]["params"]["in_channels"] == 1 and record["model"]["leads"] == ["II"]
    assert record["cv"]["folds"] == cfg.splits.cv_folds
    assert record["cv"]["record"]["folds"] == cfg.splits.cv_folds
    assert "balanced_accuracy_mean" in record["cv"]["record"]


def test_unknown_lead_set_and_net_are_refused(ml_data, tmp_path, clean_env):
    from ecgops.training.multilead import train_multilead

    cfg = run_config(ml_data, tmp_path)
    with pytest.raises(ValueError, match="lead set 'limb6' needs lead"):
        train_multilead(cfg, "beat", "cnn", "limb6")
    with pytest.raises(ValueError, match="multi-lead net"):
        train_multilead(cfg, "beat", "lstm", "all")
