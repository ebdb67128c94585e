"""The training engine: learning, determinism, resume after a kill, frozen parameters, predictor."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.models.nets import build_net
from ecgops.schema import labels, signals
from ecgops.training.engine import (
    CHECKPOINT_NAME,
    FitOptions,
    LoopConfig,
    TorchBeatPredictor,
    balanced_accuracy,
    class_weights,
    fit,
    predict_proba,
    set_seed,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
ARCH = {"channels": [4, 8], "kernel": 5, "dropout": 0.2, "hidden": 8}
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real PTB fixture beats: 80 train, 30 val (both classes in each)."""
    df = pd.read_parquet(FIXTURES / "beats_ptb.parquet").sample(frac=1.0, random_state=0)
    x, y = signals(df), labels(df)
    return {"train": (x[:80], y[:80]), "val": (x[80:], y[80:])}


LOOP = LoopConfig(
    epochs=2,
    patience=5,
    lr=3e-3,
    weight_decay=1e-4,
    batch_size=16,
    imbalance="weighted_loss",
    seed=7,
)
OPTION_FIELDS = {f.name for f in dataclasses.fields(FitOptions)}


def settings(**overrides):
    """``fit`` keyword arguments: the loop, ``n_classes`` and options, with overrides of either."""
    loop = LOOP.replace(**{k: v for k, v in overrides.items() if k not in OPTION_FIELDS})
    options = {"device": CPU, "log_mlflow": False}
    options.update({k: v for k, v in overrides.items() if k in OPTION_FIELDS})
    return {"loop": loop, "n_classes": 2, "options": FitOptions(**options)}


def train_cnn(data, **overrides):
    set_seed(7)
    net = build_net("cnn", 2, **ARCH)
    result = fit(net, data["train"], data["val"], **settings(**overrides))
    return net, result


def weights(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_fit_learns_and_keeps_the_best_epoch(data):
    net, result = train_cnn(data, epochs=4)
    assert len(result.history) == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert set(result.history[0]) >= {"train_loss", "val_loss", "val_balanced_accuracy", "lr"}
    # the model ends with the weights of its best validation epoch
    x_va, y_va = data["val"]
    proba = predict_proba(net, x_va, 8)
    assert balanced_accuracy(y_va, proba.argmax(1)) == pytest.approx(result.best_score)
    assert result.best_score == max(h["val_balanced_accuracy"] for h in result.history)
    assert result.train_beats_per_s > 0 and result.seconds > 0
    # cosine schedule: the rate falls every epoch
    lrs = [h["lr"] for h in result.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] == pytest.approx(3e-3)


def test_same_seed_gives_identical_results(data):
    a_net, a = train_cnn(data, imbalance="balanced_sampler")
    b_net, b = train_cnn(data, imbalance="balanced_sampler")
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]
    for key, value in weights(a_net).items():
        assert torch.equal(value, b_net.state_dict()[key]), key
    _, c = train_cnn(data, imbalance="balanced_sampler", seed=8)
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


class SimulatedKillError(Exception):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(data, tmp_path):
    straight_net, straight = train_cnn(data, epochs=3)

    def kill_after_first_epoch(epoch: int, record: dict) -> None:
        if epoch == 0:
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        train_cnn(data, epochs=3, checkpoint_dir=tmp_path, on_epoch=kill_after_first_epoch)
    assert (tmp_path / CHECKPOINT_NAME).exists()
    resumed_net, resumed = train_cnn(data, epochs=3, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 1
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    for key, value in weights(straight_net).items():
        assert torch.equal(value, resumed_net.state_dict()[key]), key
    # a finished run is not trained again
    again_net, again = train_cnn(data, epochs=3, checkpoint_dir=tmp_path)
    assert again.resumed_from == 3 and again.history == resumed.history
    assert all(torch.equal(v, again_net.state_dict()[k]) for k, v in weights(straight_net).items())


def test_checkpoint_of_another_run_is_not_resumed(data, tmp_path):
    train_cnn(data, epochs=1, checkpoint_dir=tmp_path)
    _, other = train_cnn(data, epochs=1, lr=1e-3, checkpoint_dir=tmp_path)
    assert other.resumed_from == 0


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np, torch
    from ecgops.models.nets import build_net
    from ecgops.training.engine import FitOptions, LoopConfig, fit, set_seed

    torch.set_num_threads(1)
    ckpt, kill_at = sys.argv[1], int(sys.argv[2])
    d = np.load(sys.argv[3])
    set_seed(7)
    net = build_net("cnn", 2, channels=[4, 8], kernel=5, dropout=0.2, hidden=8)
    calls = {"n": 0}
    forward = net.forward

    def dying_forward(x, mask=None):
        calls["n"] += 1
        if calls["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a crashed worker
        return forward(x, mask)

    net.forward = dying_forward
    loop = LoopConfig(epochs=3, patience=5, lr=3e-3, weight_decay=1e-4, batch_size=16,
                      imbalance="weighted_loss", seed=7)
    options = FitOptions(device=torch.device("cpu"), log_mlflow=False, checkpoint_dir=ckpt)
    res = fit(net, (d["xt"], d["yt"]), (d["xv"], d["yv"]), loop, n_classes=2, options=options)
    np.save(sys.argv[4], np.array([h["val_loss"] for h in res.history]))
    """
)


@pytest.mark.slow
def test_process_killed_mid_epoch_resumes_to_the_same_result(data, tmp_path):
    """SIGKILL in the middle of epoch 2, restart: same history as an uninterrupted run."""
    _, straight = train_cnn(data, epochs=3)
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    arrays = tmp_path / "data.npz"
    np.savez(arrays, xt=data["train"][0], yt=data["train"][1], xv=data["val"][0], yv=data["val"][1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 80 beats / 16 = 5 training forwards + 1 validation forward per epoch: call 9 is epoch 2
    killed = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "ckpt"),
            "9",
            str(arrays),
            str(tmp_path / "out.npy"),
        ],
        env=env,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "out.npy").exists()
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "ckpt"),
            "0",
            str(arrays),
            str(tmp_path / "out.npy"),
        ],
        env=env,
        timeout=120,
    )
    assert done.returncode == 0
    assert np.load(tmp_path / "out.npy").tolist() == [h["val_loss"] for h in straight.history]


def test_frozen_parameters_and_their_norm_statistics_stay_unchanged(data):
    set_seed(7)
    net = build_net("cnn", 2, **ARCH)
    for p in net.features.parameters():
        p.requires_grad = False
    before = weights(net)
    fit(net, data["train"], data["val"], **settings())
    after = net.state_dict()
    for key, value in before.items():
        if key.startswith("features."):  # conv weights, BN weights and running statistics
            assert torch.equal(value, after[key]), key
    assert not torch.equal(before["head.2.weight"], after["head.2.weight"])


def test_param_groups_train_only_what_they_name(data):
    set_seed(7)
    net = build_net("cnn", 2, **ARCH)
    before = weights(net)
    groups = [{"params": list(net.head.parameters()), "lr": 1e-2}]
    result = fit(net, data["train"], data["val"], **settings(param_groups=groups, epochs=1))
    assert result.history[0]["lr"] == pytest.approx(1e-2)
    after = net.state_dict()
    assert torch.equal(before["features.0.weight"], after["features.0.weight"])
    assert not torch.equal(before["head.5.weight"], after["head.5.weight"])


def test_bad_inputs_are_refused(data):
    net = build_net("cnn", 2, **ARCH)
    x, y = data["train"]
    with pytest.raises(ValueError, match="labels must lie"):
        fit(net, (x, y + 5), data["val"], **settings())
    with pytest.raises(ValueError, match="imbalance"):
        fit(net, data["train"], data["val"], **settings(imbalance="smote"))
    with pytest.raises(ValueError, match="no trainable"):
        for p in net.parameters():
            p.requires_grad = False
        fit(net, data["train"], data["val"], **settings())


def test_class_weights_and_balanced_accuracy():
    y = np.array([0, 0, 0, 1])
    assert class_weights(y, 3).tolist() == pytest.approx([4 / 6, 2.0, 0.0])
    assert balanced_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == 0.75


def test_predictor_pickles_and_predicts_like_the_net(data):
    net, _ = train_cnn(data, epochs=1)
    predictor = TorchBeatPredictor("cnn", ARCH, 2, net.state_dict(), batch_size=7)
    clone = cloudpickle.loads(cloudpickle.dumps(predictor))
    x = data["val"][0]
    proba = clone.predict_proba(x)
    assert proba.shape == (len(x), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(proba, predict_proba(net, x, 64), atol=1e-6)
    assert clone._net is not None and cloudpickle.loads(cloudpickle.dumps(clone))._net is None
