"""Torch versions of the beat's padding rules (mirrors :func:`ecgops.schema.padding_mask`).

A beat is its real samples followed by trailing zeros up to 187 values. The true length is the
position after the last non-zero sample (at least 1, so an all-zero row keeps one position).
"""

from __future__ import annotations

import torch


def padding_mask(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask, True where a sample is trailing zero padding.

    Args:
        x: beats, (n, L).

    Returns:
        (n, L) bool, identical to ``ecgops.schema.padding_mask`` on the same values.
    """
    length = x.shape[1]
    lengths = _lengths_from_values(x)
    return torch.arange(length, device=x.device)[None, :] >= lengths[:, None]


def true_lengths(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Length of each beat without its trailing padding (int64, at least 1).

    Args:
        x: beats, (n, L).
        mask: optional (n, L) bool padding mask; when given, lengths count its False entries.

    Returns:
        (n,) int64 lengths.
    """
    if mask is not None:
        return (~mask).sum(dim=1).clamp(min=1).to(torch.int64)
    return _lengths_from_values(x)


def _lengths_from_values(x: torch.Tensor) -> torch.Tensor:
    length = x.shape[1]
    nonzero = x != 0
    # index of the last non-zero sample = L - 1 - argmax over the reversed row
    last = length - torch.argmax(nonzero.flip(1).to(torch.int8), dim=1)
    return torch.where(nonzero.any(dim=1), last, torch.ones_like(last)).to(torch.int64)
