"""Fine-tuning strategies: A never moves the encoder, B does, C only in its second phase."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from ecgops.models.encoder import Classifier, Encoder
from ecgops.training.engine import LoopConfig
from ecgops.training.finetune import (
    Phase,
    make_predictor,
    result_name,
    run_phases,
    strategy_phases,
)

# each phase sets its own epochs and lr
LOOP = LoopConfig(
    epochs=1, patience=5, lr=1e-3, weight_decay=0.0, batch_size=16, imbalance="none", seed=0
)
FIT = dict(n_classes=2, device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two separable classes: class 1 has a bump in the middle of the beat."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0.2, 0.4, size=(n, 187)).astype(np.float32)
    x[y == 1, 80:100] += 0.5
    x[:, 150:] = 0.0
    return x, y.astype(np.int64)


def _model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(Encoder(16, channels=8, blocks=2, kernel=3), 2)


def _encoder_state(model: Classifier) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_strategy_phases():
    a, b = strategy_phases("A", 6, 1e-3, 0.5, 0.1), strategy_phases("B", 6, 1e-3, 0.5, 0.1)
    assert a == [Phase("head", False, 6, 1e-3)] and b == [Phase("all", True, 6, 1e-3)]
    c = strategy_phases("C", 6, 1e-3, 0.5, 0.1)
    assert [(p.train_encoder, p.epochs) for p in c] == [(False, 3), (True, 3)]
    assert c[1].lr == pytest.approx(1e-4)
    assert [p.epochs for p in strategy_phases("C", 2, 1e-3, 0.9, 0.1)] == [1, 1]
    with pytest.raises(ValueError, match="strategy"):
        strategy_phases("D", 6, 1e-3, 0.5, 0.1)
    assert result_name("scratch", None) == "transfer-scratch"
    assert result_name("contrastive", "B") == "transfer-contrastive-B"


@pytest.mark.parametrize("strategy", ["A", "B"])
def test_strategy_a_freezes_encoder_and_b_trains_it(strategy):
    model = _model()
    enc0 = _encoder_state(model)  # weights *and* batch-norm statistics
    head0 = copy.deepcopy(model.head.state_dict())
    x, y = _data()
    phases = strategy_phases(strategy, 2, 1e-2, 0.5, 0.1)
    run_phases(model, phases, (x[:32], y[:32]), (x[32:], y[32:]), LOOP, **FIT)
    assert _same(enc0, _encoder_state(model)) is (strategy == "A")
    assert not _same(head0, model.head.state_dict())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards


def test_strategy_c_moves_the_encoder_only_in_phase_two():
    model = _model()
    enc0 = _encoder_state(model)
    x, y = _data()
    after: dict[str, dict] = {}
    epochs: list[tuple[int, str]] = []
    results = run_phases(
        model,
        strategy_phases("C", 2, 1e-2, 0.5, 0.5),
        (x[:32], y[:32]),
        (x[32:], y[32:]),
        LOOP,
        on_epoch=lambda e, m: epochs.append((e, m["phase"])),
        on_phase_end=lambda ph, m: after.setdefault(ph.name, _encoder_state(m)),
        **FIT,
    )
    assert len(results) == 2
    assert _same(enc0, after["head"])
    assert not _same(after["head"], after["all"])
    assert [p for _, p in epochs] == ["head", "all"] and [e for e, _ in epochs] == [0, 1]


def test_transfer_predictor_pickles_and_matches_the_model():
    model = _model().eval()
    x, _ = _data(8)
    pred = pickle.loads(pickle.dumps(make_predictor(model, batch_size=3)))
    with torch.no_grad():
        expected = torch.softmax(model(torch.as_tensor(x)), dim=1).numpy()
    got = pred.predict_proba(x)
    assert got.shape == (8, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_pretrain_then_finetune_end_to_end(tmp_path, monkeypatch):
    """Smoke profile on the real fixture beats: lineage, outputs, MLflow curves, pyfunc model."""
    import shutil
    from pathlib import Path

    import mlflow

    from ecgops.config import load_config
    from ecgops.data.splits import make_splits
    from ecgops.io import read_json
    from ecgops.models.encoder import file_sha256
    from ecgops.training.finetune import finetune
    from ecgops.training.pretrain import pretrain

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ECGOPS_PROFILE", raising=False)
    repo = Path(__file__).resolve().parents[2]
    shutil.copy(repo / "params.yaml", tmp_path / "params.yaml")
    cfg = load_config(
        root=tmp_path, profile="smoke", overrides={"deep": {"num_threads": 1}, "seed": 0}
    )
    for task in ("mitbih", "ptb"):
        dest = cfg.path("processed") / f"{task}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo / "tests" / "fixtures" / f"beats_{task}.parquet", dest)
        make_splits(cfg, task)

    pre = pretrain(cfg, "contrastive")  # MIT-BIH's patient split: the encoder of both PTB schemes
    enc_file = Path(pre["encoder_path"])
    assert enc_file == tmp_path / "models" / "encoders" / "contrastive-patient.pt"
    assert file_sha256(enc_file) == pre["encoder_sha256"]
    probe = read_json(tmp_path / "outputs/metrics/mitbih/patient/probe-contrastive.json")
    assert probe["family"] == "transfer" and probe["mlflow_run_id"] == pre["run_id"]
    assert 0.0 <= probe["test"]["accuracy"] <= 1.0
    client = mlflow.MlflowClient()
    # the fixture's DS1 records are too few for a grouped val part: no per-epoch val probe
    for key in ("train_loss", "val_loss", "probe_test_accuracy"):
        assert len(client.get_metric_history(pre["run_id"], key)) == pre["epochs_run"]
    beat = pretrain(cfg, "supervised", "beat")  # a split with a val part: the per-epoch val probe
    for key in ("probe_val_accuracy", "probe_test_accuracy"):
        assert len(client.get_metric_history(beat["run_id"], key)) == beat["epochs_run"]
    artifacts = {a.path for a in client.list_artifacts(pre["run_id"], "encoder")}
    assert "encoder/contrastive-patient.pt" in artifacts
    fig = tmp_path / "outputs/figures/mitbih/patient/probe-contrastive"
    assert (fig / "embeddings-init.png").exists() and (fig / "embeddings-pretrained.png").exists()

    ft = finetune(cfg, "beat", "contrastive", "C")  # PTB's beat split, the same encoder
    run = client.get_run(ft["run_id"])
    assert run.data.tags["pretrained_run_id"] == pre["run_id"]
    assert run.data.tags["encoder_sha256"] == pre["encoder_sha256"]
    assert run.data.tags["pretrain_scheme"] == "patient"
    rec = read_json(tmp_path / "outputs/metrics/ptb/beat/transfer-contrastive-C.json")
    assert rec["transfer"]["strategy"] == "C" and len(rec["transfer"]["phases"]) == 2
    fig = tmp_path / "outputs/figures/ptb/beat/transfer-contrastive-C"
    assert (fig / "embeddings-before-finetune.png").exists()
    assert (fig / "embeddings-after-finetune.png").exists()
    model = mlflow.pyfunc.load_model(f"runs:/{ft['run_id']}/model")
    x = np.asarray(pd_read(tmp_path / "data/processed/ptb.parquet"))[:3]
    out = model.predict(x)
    assert list(out.columns[:2]) == ["pred", "pred_name"] and len(out) == 3

    scratch = finetune(cfg, "patient", "scratch")
    assert scratch["name"] == "transfer-scratch" and scratch["cv"]["folds"] == cfg.splits.cv_folds
    assert "pretrained_run_id" not in client.get_run(scratch["run_id"]).data.tags


def pd_read(path):
    """The beats of a table as a float32 array."""
    import pandas as pd

    from ecgops.schema import signals

    return signals(pd.read_parquet(path))
