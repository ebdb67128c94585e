"""Strip the trailing zero padding of beats; the true length is kept as a feature.

A Kachuee beat is the signal from its R-peak for 1.2 x the median RR interval, zero-padded to
187 samples. The padding carries no signal, but its start (the true length) encodes the heart
rate. Features are computed on the stripped beats.
"""

from __future__ import annotations

import numpy as np

from ecgops.schema import BEAT_LEN, true_lengths


def as_beats(x: np.ndarray) -> np.ndarray:
    """Check and convert beats to a C-contiguous float64 array of shape (n, 187).

    Args:
        x: beats, shape (n, 187) (or one beat of shape (187,)).

    Returns:
        The beats as float64, C-contiguous.

    Raises:
        ValueError: when the shape is not (n, 187).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != BEAT_LEN:
        raise ValueError(f"expected beats of shape (n, {BEAT_LEN}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def strip_padding(x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut each beat at its true length (the trailing zeros removed).

    Args:
        x: beats, shape (n, 187).

    Returns:
        (beats, lengths): a list of n 1-D arrays of the true lengths, and the lengths (int64).
        An all-zero beat keeps one sample (length 1).
    """
    arr = as_beats(x)
    lengths = true_lengths(arr)
    return [arr[i, : lengths[i]] for i in range(arr.shape[0])], lengths


def group_by_length(lengths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Row indices of beats that share one true length, for vectorised per-length work.

    Args:
        lengths: true lengths, shape (n,).

    Returns:
        ``[(length, row_indices), ...]`` in increasing length order; row indices ascend.
    """
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    cuts = np.flatnonzero(np.diff(sorted_lengths)) + 1
    return [
        (int(sorted_lengths[part[0]]), np.sort(order[part[0] : part[-1] + 1]))
        for part in np.split(np.arange(len(order)), cuts)
        if len(part)
    ]


def to_long(x: np.ndarray, ids: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Stripped beats in tsfresh's long format (id, time, value), as three flat arrays.

    Args:
        x: beats, shape (n, 187).
        ids: one id per beat (default 0..n-1).

    Returns:
        (id, time, value) arrays, one entry per non-padding sample.
    """
    arr = as_beats(x)
    lengths = true_lengths(arr)
    ids = np.arange(arr.shape[0]) if ids is None else np.asarray(ids)
    keep = np.arange(arr.shape[1])[None, :] < lengths[:, None]
    rows, cols = np.nonzero(keep)
    return ids[rows], cols, arr[rows, cols]
