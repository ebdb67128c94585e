"""Augmentations keep the beat length and its zero padding, and stay in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgops.config import AugmentConfig
from ecgops.schema import true_lengths as np_true_lengths
from ecgops.training.augment import (
    Augmenter,
    add_noise,
    scale_amplitude,
    time_stretch,
    true_lengths,
)

LENGTHS = [187, 120, 60, 25, 1]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _beats() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = 0.1 + 0.8 * torch.rand(len(LENGTHS), 187, generator=g)
    for i, n in enumerate(LENGTHS):
        x[i, n:] = 0.0
    return x


def test_true_lengths_matches_numpy_twin():
    x = _beats()
    x[2, 10] = 0.0  # an inner zero is not padding
    assert true_lengths(x).tolist() == np_true_lengths(x.numpy()).tolist() == LENGTHS
    assert true_lengths(torch.zeros(1, 187)).tolist() == [1]


@pytest.mark.parametrize(
    "aug",
    [
        lambda x, n, g: add_noise(x, n, 0.5, g),
        lambda x, n, g: scale_amplitude(x, n, (0.5, 2.0), g),
        lambda x, n, g: time_stretch(x, n, (0.9, 0.9), g)[0],
    ],
    ids=["noise", "scale", "shrink"],
)
def test_augmentation_keeps_length_padding_and_range(aug):
    x = _beats()
    lengths = true_lengths(x)
    out = aug(x, lengths, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    pad = torch.arange(187)[None, :] >= lengths[:, None]
    assert torch.all(out[pad] == 0)
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_time_stretch_sets_new_length_and_interpolates():
    x = torch.zeros(2, 187)
    x[0, :50] = torch.linspace(0.1, 0.6, 50)  # a ramp: stretching keeps it a ramp
    x[1, :150] = 0.5
    out, new_len = time_stretch(x, true_lengths(x), (1.5, 1.5))
    assert new_len.tolist() == [75, 187]  # 150 x 1.5 is cut at the row length
    assert torch.all(out[0, 75:] == 0)
    ramp = out[0, :75]
    assert torch.allclose(ramp[[0, -1]], torch.tensor([0.1, 0.6]))
    assert torch.all(ramp.diff() > 0)
    assert torch.allclose(out[1], torch.full((187,), 0.5))


def test_augmenter_views_differ_and_respect_padding():
    cfg = AugmentConfig(noise_std=0.02, scale_range=(0.8, 1.2), stretch_range=(0.9, 1.0))
    aug = Augmenter(cfg)
    x = _beats()
    before = x.clone()
    g = torch.Generator().manual_seed(3)
    v1, v2 = aug(x, g), aug(x, g)
    assert torch.equal(x, before)  # input untouched
    assert v1.shape == (len(LENGTHS), 187) and not torch.equal(v1, v2)
    # stretch factors <= 1: a view is never longer than its beat, padding stays zero
    for v in (v1, v2):
        assert np.all(np_true_lengths(v.numpy()) <= np.array(LENGTHS))
        assert v.min() >= 0 and v.max() <= 1


def test_augmenter_disabled_is_identity_and_bad_ranges_fail():
    x = _beats()
    ident = Augmenter(AugmentConfig(noise_std=0.0, scale_range=(1, 1), stretch_range=(1, 1)))
    assert torch.equal(ident(x), x)
    with pytest.raises(ValueError, match="scale_range"):
        Augmenter(AugmentConfig(noise_std=0.0, scale_range=(1.2, 0.8), stretch_range=(1, 1)))
