"""The per-beat context beside a net's encoded waveform (the ``context_dim`` of a net's head),
and the leads of a multi-lead beat as conv channels (:func:`as_channels`)."""

from __future__ import annotations

import torch


def with_context(encoded: torch.Tensor, context: torch.Tensor | None, dim: int) -> torch.Tensor:
    """The flattened encoder output, with the beats' context concatenated when the net has one.

    Args:
        encoded: the encoder's feature maps (n, channels, length).
        context: the beats' context (n, dim), or None.
        dim: the net's ``context_dim`` (0: it reads no context).

    Returns:
        (n, channels * length [+ dim]).

    Raises:
        ValueError: context missing for a context net, given to a net without one, or of
            another width.
    """
    flat = encoded.flatten(1)
    if dim == 0:
        if context is not None:
            raise ValueError("this net reads no context (context_dim 0), but context was given")
        return flat
    if context is None:
        raise ValueError(f"this net reads {dim} context values per beat, but none were given")
    if context.shape != (flat.shape[0], dim):
        raise ValueError(f"expected context of shape ({flat.shape[0]}, {dim}), got {context.shape}")
    return torch.cat([flat, context.to(flat.dtype)], dim=1)


def as_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Beats as a conv input (n, in_channels, length).

    Args:
        x: one lead per beat (n, length), or ``in_channels`` leads as (n, in_channels, length)
            or side by side, lead-major, (n, in_channels * length) (the multi-lead table's
            ``<lead>_x0..`` columns in lead order).
        in_channels: leads the net reads.

    Returns:
        (n, in_channels, length).

    Raises:
        ValueError: a shape that does not hold ``in_channels`` leads.
    """
    if x.dim() == 3:
        if x.shape[1] != in_channels:
            raise ValueError(f"expected {in_channels} leads per beat, got {x.shape[1]}")
        return x
    if x.dim() != 2 or x.shape[1] % in_channels:
        raise ValueError(f"expected beats of {in_channels} lead(s), got shape {tuple(x.shape)}")
    return x.view(x.shape[0], in_channels, x.shape[1] // in_channels)
