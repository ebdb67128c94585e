"""Models that read the RR context: classical ``...+rr`` inputs and deep ``{net}+rr`` nets.

Real tiny data: the MIT-BIH table built from the fixture records (``tests/fixtures/raw/mitdb``)
with :mod:`ecgops.data.build`, so every beat carries its RR context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import smoke_config

from ecgops.config import Config
from ecgops.errors import DataError
from ecgops.features.context import (
    NEEDS_CONTEXT_TAG,
    RECORD_SCALE_COLUMN,
    model_context_columns,
    normalise_context,
    split_with_context,
    with_record_scale,
)
from ecgops.schema import CONTEXT_COLUMNS, RR_COLUMNS, SIGNAL_COLUMNS


@pytest.fixture(scope="module")
def mitbih_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A smoke config with the MIT-BIH fixture records built into a table with context."""
    from ecgops.data.build import collect, save_table
    from ecgops.data.raw import import_raw
    from ecgops.data.splits import make_splits

    with pytest.MonkeyPatch.context() as mp:
        for name in ("ECGOPS_DATA_SOURCE", "ECGOPS_PROFILE", "ECGOPS_ROOT", "MLFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        cfg = smoke_config(tmp_path_factory.mktemp("context"))
        import_raw(cfg)
        save_table(cfg, "mitbih", *collect(cfg, "mitbih"))
        make_splits(cfg, "mitbih")
    return cfg


def _table(cfg: Config) -> pd.DataFrame:
    return pd.read_parquet(cfg.path("processed") / "mitbih.parquet")


def _run(cfg: Config, run_id: str):
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    return mlflow.get_run(run_id)


def _model(cfg: Config, run_id: str):
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    return mlflow.pyfunc.load_model(f"runs:/{run_id}/model")


# ---- the transformation -------------------------------------------------------------------------


def test_the_fixture_table_carries_the_context(mitbih_cfg: Config) -> None:
    table = _table(mitbih_cfg)
    assert set(CONTEXT_COLUMNS) <= set(table.columns)
    assert table[CONTEXT_COLUMNS].notna().all().all()


def test_record_mean_normalisation_divides_intervals_by_their_records_mean(
    mitbih_cfg: Config,
) -> None:
    table = with_record_scale(_table(mitbih_cfg))
    for _, rows in table.groupby("record"):
        assert rows[RECORD_SCALE_COLUMN].nunique() == 1
        assert rows[RECORD_SCALE_COLUMN].iloc[0] == pytest.approx(rows["rr_prev"].mean())
    columns = model_context_columns("record_mean")
    out = normalise_context(table[columns].to_numpy(), "record_mean")
    rr = [CONTEXT_COLUMNS.index(c) for c in RR_COLUMNS]
    ratios = [i for i in range(len(CONTEXT_COLUMNS)) if i not in rr]
    scale = table[RECORD_SCALE_COLUMN].to_numpy()[:, None]
    assert np.allclose(out[:, rr], table[RR_COLUMNS].to_numpy() / scale, rtol=1e-5)
    assert np.allclose(out[:, ratios], table[CONTEXT_COLUMNS].to_numpy()[:, ratios], rtol=1e-5)
    # label-free and per record: shuffling the labels or other records changes nothing
    one = table[table["record"] == table["record"].iloc[0]]
    alone = with_record_scale(one.assign(label=0), records=None)
    assert np.allclose(alone[RECORD_SCALE_COLUMN], one[RECORD_SCALE_COLUMN])


def test_window_mean_normalisation_uses_each_beats_rr_mean(mitbih_cfg: Config) -> None:
    table = _table(mitbih_cfg)
    out = normalise_context(table[CONTEXT_COLUMNS].to_numpy(), "window_mean")
    assert np.allclose(out[:, CONTEXT_COLUMNS.index("rr_mean")], 1.0, rtol=1e-5)
    assert model_context_columns("window_mean") == CONTEXT_COLUMNS


def test_one_record_mean_over_a_record_split_across_parts(mitbih_cfg: Config) -> None:
    from ecgops.data.splits import load_split

    parts = load_split(mitbih_cfg, "mitbih", "beat")
    ready = split_with_context(mitbih_cfg, "mitbih", parts, model_context_columns("record_mean"))
    whole = with_record_scale(_table(mitbih_cfg))
    expected = whole.groupby("record")[RECORD_SCALE_COLUMN].first()
    for part in ready.values():
        got = part.groupby("record")[RECORD_SCALE_COLUMN].first()
        assert np.allclose(got, expected[got.index])


def test_a_table_without_context_is_refused_naming_the_columns(mitbih_cfg: Config) -> None:
    from ecgops.data.splits import load_split

    parts = load_split(mitbih_cfg, "mitbih", "beat")
    kaggle_like = {k: v.drop(columns=CONTEXT_COLUMNS) for k, v in parts.items()}
    with pytest.raises(DataError, match="rr_prev.*Kaggle"):
        split_with_context(mitbih_cfg, "mitbih", kaggle_like, model_context_columns("none"))


def test_context_inputs_are_refused_for_ptb(cfg_smoke: Config) -> None:
    from ecgops.training.classical import train_classical
    from ecgops.training.deep import train_deep

    with pytest.raises(ValueError, match="RR context"):
        train_classical(cfg_smoke, "ptb", "beat", "lgbm", "raw+rr")
    with pytest.raises(ValueError, match="RR context"):
        train_deep(cfg_smoke, "ptb", "beat", "cnn+rr")


# ---- classical ----------------------------------------------------------------------------------


def test_a_classical_context_model_reads_the_context_and_refuses_kaggle_rows(
    mitbih_cfg: Config,
) -> None:
    from ecgops.training.classical import train_classical

    record = train_classical(mitbih_cfg, "mitbih", "patient", "lgbm", "features+rr")
    columns = model_context_columns(mitbih_cfg.context.normalise)
    assert record["context_columns"] == columns
    assert record["context_normalise"] == mitbih_cfg.context.normalise
    run = _run(mitbih_cfg, record["mlflow_run_id"])
    assert run.data.tags[NEEDS_CONTEXT_TAG] == "true"
    assert run.data.params["input"] == "features+rr"

    model = _model(mitbih_cfg, run.info.run_id)
    info = model.metadata.metadata["ecgops"]
    assert info["context_columns"] == columns and info["needs_context"] is True
    assert set(columns) <= set(model.metadata.get_input_schema().input_names())
    beats = with_record_scale(_table(mitbih_cfg)).head(6)
    out = model.predict(beats)  # the whole table row: extra columns are ignored
    assert len(out) == 6 and np.allclose(out.filter(like="p_").sum(axis=1), 1.0)

    from ecgops.registry.pyfunc import InputError

    with pytest.raises(InputError, match="rr_prev, rr_next.*Kaggle"):
        model.predict(beats[SIGNAL_COLUMNS])
    with pytest.raises(InputError, match=RECORD_SCALE_COLUMN):
        model.predict(beats.drop(columns=RECORD_SCALE_COLUMN))


def test_a_morphology_model_accepts_rows_with_or_without_context(mitbih_cfg: Config) -> None:
    from ecgops.training.classical import train_classical

    record = train_classical(mitbih_cfg, "mitbih", "patient", "lgbm", "raw")
    run = _run(mitbih_cfg, record["mlflow_run_id"])
    assert run.data.tags[NEEDS_CONTEXT_TAG] == "false"
    model = _model(mitbih_cfg, run.info.run_id)
    assert model.metadata.metadata["ecgops"]["needs_context"] is False
    beats = _table(mitbih_cfg).head(5)
    with_ctx = model.predict(beats)
    kaggle = model.predict(pd.DataFrame(np.c_[beats[SIGNAL_COLUMNS].to_numpy(), beats["label"]]))
    assert with_ctx.equals(kaggle)


# ---- deep ---------------------------------------------------------------------------------------


def test_a_context_net_trains_on_x_and_context_and_logs_a_context_model(
    mitbih_cfg: Config,
) -> None:
    from ecgops.training.deep import train_deep

    record = train_deep(mitbih_cfg, "mitbih", "patient", "cnn+rr")
    assert record["name"] == "cnn+rr"
    assert record["model"]["params"]["context_dim"] == len(CONTEXT_COLUMNS)
    run = _run(mitbih_cfg, record["mlflow_run_id"])
    assert run.data.tags[NEEDS_CONTEXT_TAG] == "true"
    ckpt = mitbih_cfg.path("models") / "checkpoints" / "mitbih" / "patient" / "cnn+rr" / "main"
    assert (ckpt / "last.pt").exists()

    import mlflow

    model = mlflow.pyfunc.load_model(record["model_uri"])
    beats = with_record_scale(_table(mitbih_cfg)).head(8)
    out = model.predict(beats)
    assert len(out) == 8
    changed = beats.assign(rr_prev=beats["rr_prev"] * 3, rr_prev_ratio=beats["rr_prev_ratio"] * 3)
    assert not np.allclose(
        model.predict(changed).filter(like="p_").to_numpy(), out.filter(like="p_").to_numpy()
    ), "the net's output does not depend on the RR context"
    from ecgops.registry.pyfunc import InputError

    with pytest.raises(InputError, match="Kaggle"):
        model.predict(beats[SIGNAL_COLUMNS])


def test_unknown_context_nets_are_refused(mitbih_cfg: Config) -> None:
    from ecgops.training.deep import train_deep

    with pytest.raises(ValueError, match="unknown deep model 'lstm\\+rr'"):
        train_deep(mitbih_cfg, "mitbih", "patient", "lstm+rr")


def test_context_columns_feed_the_engine_in_batches(tmp_path: Path) -> None:
    import torch

    from ecgops.models.nets import build_net
    from ecgops.training.engine import LoopConfig, fit, predict_proba

    rng = np.random.default_rng(0)
    x = rng.random((64, 187), dtype=np.float32)
    context = rng.random((64, 3), dtype=np.float32)
    y = (context[:, 0] > 0.5).astype(np.int64)  # the label lives in the context only
    net = build_net("cnn", 2, channels=[4], kernel=3, hidden=8, dropout=0.0, context_dim=3)
    loop = LoopConfig(epochs=2, patience=2, lr=0.01, weight_decay=0.0, batch_size=16,
                      imbalance="none", seed=0)  # fmt: skip
    result = fit(net, (x, y, context), (x, y, context), loop, n_classes=2,
                 options=None)  # fmt: skip
    assert len(result.history) == 2
    proba = predict_proba(net, x, 32, torch.device("cpu"), context)
    assert proba.shape == (64, 2)
    with pytest.raises(ValueError, match="both the train and the val part"):
        fit(net, (x, y, context), (x, y), loop, n_classes=2)
