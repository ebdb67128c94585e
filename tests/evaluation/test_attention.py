"""Attention maps: rollout arithmetic, map shapes, figures and CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.evaluation.attention import (
    compute_maps,
    layer_maps,
    mean_attention,
    pick_examples,
    rollout,
    save_attention_maps,
    to_samples,
)
from ecgops.models.nets import build_net
from ecgops.schema import labels, padding_mask, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ARCH = {"d_model": 16, "heads": 2, "layers": 2, "ff": 16, "dropout": 0.1}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ptb() -> pd.DataFrame:
    return pd.read_parquet(FIXTURES / "beats_ptb.parquet")


def test_rollout_and_means_on_a_hand_computed_example():
    # one layer, one head, 3 tokens, the last one padding (its query row is ignored)
    w = np.array([[[[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [0.6, 0.4, 0.0]]]])
    key_mask = np.array([[False, False, True]])
    # 0.5 * w + 0.5 * I, averaged over the two real query rows
    assert rollout([w], key_mask, 0.5)[0] == pytest.approx([0.4375, 0.5625, 0.0])
    assert layer_maps([w], key_mask)[0, 0] == pytest.approx([0.375, 0.625, 0.0])
    # two layers: rollout multiplies the mixing matrices, mean averages the layers
    a = 0.5 * w[0, 0] + 0.5 * np.eye(3)
    expected = (a @ a)[:2].mean(axis=0)
    assert rollout([w, w], key_mask, 0.5)[0] == pytest.approx(expected / expected.sum())
    assert mean_attention([w, w], key_mask)[0] == pytest.approx([0.375, 0.625, 0.0])


def test_to_samples_repeats_tokens_over_their_patch():
    assert to_samples(np.array([[1.0, 2.0, 3.0]]), 2, 5).tolist() == [[1, 1, 2, 2, 3]]


@pytest.mark.parametrize("patch", [1, 4])
def test_map_shapes_and_zero_attention_on_padding(patch, ptb):
    x = signals(ptb)[:5]
    torch.manual_seed(0)
    net = build_net("transformer", 2, patch=patch, **ARCH)
    maps = compute_maps(net, x, batch_size=2, residual=0.5)
    tokens = -(-187 // patch)
    assert maps["raw_shapes"] == [(2, 2, tokens, tokens)] * 2  # (batch, heads, T, T) per layer
    assert maps["rollout"].shape == (5, 187) and maps["mean"].shape == (5, 187)
    assert maps["layers"].shape == (5, 2, 187)
    assert (maps["rollout"] >= 0).all()
    # padded samples (whole padded patches) get nothing; each token map sums to one
    token_pad = net.token_mask(torch.from_numpy(padding_mask(x))).numpy()
    sample_pad = to_samples(token_pad, patch, 187)
    assert (maps["rollout"][sample_pad] == 0).all()
    assert (maps["layers"][:, 0][sample_pad] == 0).all()
    assert np.allclose(maps["rollout"][:, ::patch].sum(axis=1), 1.0)
    assert net.training  # mode restored


def test_pick_examples_covers_correct_and_wrong_per_class():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 0, 0])
    groups = pick_examples(y, pred, 2, per_group=2, seed=0)
    assert groups[(0, True)].tolist() == [0, 1]
    assert groups[(0, False)].tolist() == [2]
    assert groups[(1, True)].tolist() == [3]
    assert groups[(1, False)].tolist() == [4, 5]


def test_save_attention_maps_writes_pngs_and_csvs(cfg_smoke_factory, ptb):
    cfg_smoke = cfg_smoke_factory(deep={"attention": {"examples_per_class": 2}})
    x, y = signals(ptb), labels(ptb)
    torch.manual_seed(0)
    net = build_net("transformer", 2, patch=4, **ARCH)
    proba = np.tile([0.3, 0.7], (len(y), 1))  # everything predicted MI: healthy beats are wrong
    info = save_attention_maps(
        cfg_smoke, task="ptb", scheme="beat", model=net, x_test=x, y_test=y, proba_test=proba
    )
    fdir = cfg_smoke.path("outputs") / "figures" / "ptb" / "beat" / "transformer"
    names = sorted(p.name for p in fdir.glob("attention_*.png"))
    assert names == [
        "attention_MI_correct.png",
        "attention_healthy_wrong.png",
        "attention_profile.png",
    ]
    for name in names:
        assert (fdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert info["layers"] == 2 and info["heads"] == 2 and info["tokens"] == 47
    assert info["examples"] == 2 * cfg_smoke.deep.attention.examples_per_class
    pdir = cfg_smoke.path("outputs") / "plots" / "ptb" / "beat" / "transformer"
    profile = pd.read_csv(pdir / "attention_profile.csv")
    assert set(profile["class"]) == {"healthy", "MI"}
    assert {"sample", "rollout", "mean", "layer_1", "layer_2", "mean_beat"} <= set(profile)
    assert len(profile) == 2 * 187
    examples = pd.read_csv(pdir / "attention_examples.csv")
    assert len(examples) == info["examples"] * 187
