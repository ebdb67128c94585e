"""NT-Xent equals a hand computation; the projection head is trained jointly with the encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ecgops.config import AugmentConfig
from ecgops.models.encoder import Encoder, ProjectionHead
from ecgops.training.augment import Augmenter
from ecgops.training.contrastive import (
    ContrastiveModel,
    contrastive_step,
    nt_xent,
    train_contrastive,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_nt_xent_matches_hand_computed_value():
    # two pairs of unit vectors in 2-D: views 0,1 = a; views 2,3 = b
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # anchors a0, b0
    z2 = torch.tensor([[0.6, 0.8], [0.8, 0.6]])  # positives a1, b1
    t = 0.5
    # rows in order [a0, b0, a1, b1]; cosine similarities by hand
    s = {
        ("a0", "b0"): 0.0,
        ("a0", "a1"): 0.6,
        ("a0", "b1"): 0.8,
        ("b0", "a1"): 0.8,
        ("b0", "b1"): 0.6,
        ("a1", "b1"): 0.96,
    }

    def sim(i, j):
        return s.get((i, j), s.get((j, i)))

    names = ["a0", "b0", "a1", "b1"]
    positive = {"a0": "a1", "a1": "a0", "b0": "b1", "b1": "b0"}
    losses = []
    for a in names:
        denom = sum(math.exp(sim(a, k) / t) for k in names if k != a)
        losses.append(-math.log(math.exp(sim(a, positive[a]) / t) / denom))
    expected = sum(losses) / len(losses)
    got = nt_xent(z1, z2, t)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # scale invariance (cosine similarity) and a larger loss for swapped positives
    assert nt_xent(3 * z1, z2, t).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(z1, z2.flip(0), t).item() != pytest.approx(expected)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError):
        nt_xent(torch.zeros(2, 3), torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), 0.0)


def _model(seed: int = 0) -> ContrastiveModel:
    torch.manual_seed(seed)
    return ContrastiveModel(Encoder(16, channels=8, blocks=2, kernel=3), ProjectionHead(16, 32))


def _beats(n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.9, size=(n, 187)).astype(np.float32)
    for i in range(n):
        x[i, rng.integers(60, 187) :] = 0
    return x


AUG = AugmentConfig(noise_std=0.02, scale_range=(0.8, 1.2), stretch_range=(0.9, 1.1))


def test_projection_head_and_encoder_change_after_one_step():
    model = _model()
    head_before = [p.detach().clone() for p in model.head.parameters()]
    enc_before = [p.detach().clone() for p in model.encoder.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    loss = contrastive_step(model, torch.as_tensor(_beats()), Augmenter(AUG), opt, 0.1)
    assert math.isfinite(loss)
    for before, p in zip(head_before, model.head.parameters(), strict=True):
        assert p.grad is not None and p.grad.abs().sum() > 0
        assert not torch.equal(before, p.detach())
    assert any(
        not torch.equal(b, p.detach())
        for b, p in zip(enc_before, model.encoder.parameters(), strict=True)
    )


def test_train_contrastive_lowers_the_loss_and_keeps_best_weights():
    model = _model()
    x = _beats(64)
    seen = []
    res = train_contrastive(
        model,
        x[:48],
        x[48:],
        Augmenter(AUG),
        epochs=3,
        patience=5,
        lr=3e-3,
        weight_decay=0.0,
        batch_size=16,
        temperature=0.5,
        seed=0,
        device=torch.device("cpu"),
        on_epoch=lambda e, m: seen.append(e),
    )
    assert seen == [0, 1, 2] and len(res.history) == 3
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.best_loss == min(h["val_loss"] for h in res.history)
    assert res.train_beats_per_s > 0
