"""On-the-fly beat augmentations in torch that respect the trailing zero padding.

A beat is a row of 187 values in [0, 1] whose end is zero padding. Every augmentation works on
the true-length part only: the output keeps 187 samples, the padding stays exactly zero, and
values are clipped to [0, 1]. All three act on a whole batch at once (no Python loop per beat).
"""

from __future__ import annotations

import torch

from ecgops.config import AugmentConfig


def true_lengths(x: torch.Tensor) -> torch.Tensor:
    """Length of each beat without its trailing zero padding (at least 1), as int64 (n,).

    The torch twin of :func:`ecgops.schema.true_lengths`.
    """
    n_samples = x.shape[1]
    nonzero = x != 0
    last = n_samples - torch.argmax(nonzero.flip(1).to(torch.int8), dim=1)
    return torch.where(nonzero.any(dim=1), last, torch.ones_like(last)).to(torch.int64)


def valid_mask(lengths: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Boolean (n, n_samples), True on the true-length part of each beat."""
    return torch.arange(n_samples, device=lengths.device)[None, :] < lengths[:, None]


def _uniform(n: int, lo: float, hi: float, like: torch.Tensor, gen: torch.Generator | None):
    u = torch.rand(n, generator=gen, device=like.device, dtype=like.dtype)
    return lo + (hi - lo) * u


def add_noise(
    x: torch.Tensor, lengths: torch.Tensor, std: float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise (``std``) to the true-length part; padding stays zero.

    Args:
        x: beats (n, L) in [0, 1].
        lengths: true lengths (n,).
        std: noise standard deviation (0 disables).
        gen: optional torch generator for reproducibility.

    Returns:
        Noisy beats (n, L), clipped to [0, 1].
    """
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std
    mask = valid_mask(lengths, x.shape[1])
    return torch.where(mask, (x + noise).clamp(0.0, 1.0), torch.zeros_like(x))


def scale_amplitude(
    x: torch.Tensor,
    lengths: torch.Tensor,
    scale_range: tuple[float, float],
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Multiply each beat by a factor drawn uniformly from ``scale_range``; clip to [0, 1].

    Args:
        x: beats (n, L).
        lengths: true lengths (n,).
        scale_range: (low, high) factors; (1, 1) disables.
        gen: optional torch generator.

    Returns:
        Scaled beats (n, L) with zero padding.
    """
    lo, hi = scale_range
    if lo == hi == 1.0:
        return x
    factor = _uniform(x.shape[0], lo, hi, x, gen)[:, None]
    mask = valid_mask(lengths, x.shape[1])
    return torch.where(mask, (x * factor).clamp(0.0, 1.0), torch.zeros_like(x))


def time_stretch(
    x: torch.Tensor,
    lengths: torch.Tensor,
    stretch_range: tuple[float, float],
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample each beat's true part to ``length x factor`` samples (linear interpolation).

    A factor above 1 slows the beat down (longer), below 1 speeds it up; the new length is
    capped at the row length, so a stretched beat is cut at 187 samples, and padded with zeros.

    Args:
        x: beats (n, L).
        lengths: true lengths (n,).
        stretch_range: (low, high) factors; (1, 1) disables.
        gen: optional torch generator.

    Returns:
        The stretched beats (n, L) and their new true lengths (n,).
    """
    lo, hi = stretch_range
    if lo == hi == 1.0:
        return x, lengths
    n, n_samples = x.shape
    factor = _uniform(n, lo, hi, x, gen)
    new_len = torch.round(lengths.to(x.dtype) * factor).clamp(1, n_samples).to(torch.int64)
    # output position j of beat i reads source position j * (len_i - 1) / (new_len_i - 1)
    src_step = (lengths - 1).clamp(min=0).to(x.dtype) / (new_len - 1).clamp(min=1).to(x.dtype)
    pos = torch.arange(n_samples, device=x.device, dtype=x.dtype)[None, :] * src_step[:, None]
    pos = torch.minimum(pos, (lengths - 1).clamp(min=0).to(x.dtype)[:, None])
    left = pos.floor().to(torch.int64)
    right = torch.minimum(left + 1, (lengths - 1).clamp(min=0)[:, None])
    w = pos - left.to(x.dtype)
    out = (1 - w) * torch.gather(x, 1, left) + w * torch.gather(x, 1, right)
    mask = valid_mask(new_len, n_samples)
    return torch.where(mask, out.clamp(0.0, 1.0), torch.zeros_like(x)), new_len


class Augmenter:
    """The configured chain: time stretch, amplitude scaling, Gaussian noise (each optional).

    Call it on a batch (n, 187) to get one random view; two calls give SimCLR's two views.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.noise_std = float(cfg.noise_std)
        self.scale_range = (float(cfg.scale_range[0]), float(cfg.scale_range[1]))
        self.stretch_range = (float(cfg.stretch_range[0]), float(cfg.stretch_range[1]))
        for name, (lo, hi) in (
            ("scale_range", self.scale_range),
            ("stretch_range", self.stretch_range),
        ):
            if not 0 < lo <= hi:
                raise ValueError(
                    f"transfer.augment.{name} must satisfy 0 < low <= high, got {lo, hi}"
                )
        if self.noise_std < 0:
            raise ValueError(f"transfer.augment.noise_std must be >= 0, got {self.noise_std}")

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """One augmented view of a batch of beats (n, 187); the input is not modified.

        Args:
            x: beats (n, 187), zero-padded at the end.
            gen: optional torch generator (same device as ``x``) for reproducible views.

        Returns:
            The augmented batch, same shape and dtype.
        """
        lengths = true_lengths(x)
        out, lengths = time_stretch(x, lengths, self.stretch_range, gen)
        out = scale_amplitude(out, lengths, self.scale_range, gen)
        return add_noise(out, lengths, self.noise_std, gen)
