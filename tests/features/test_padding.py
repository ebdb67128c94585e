"""Stripping the trailing zero padding of beats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.features.padding import as_beats, group_by_length, strip_padding, to_long
from ecgops.schema import BEAT_LEN, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _beat(length: int, inner_zero_at: int | None = None) -> np.ndarray:
    x = np.zeros(BEAT_LEN, dtype=np.float32)
    x[:length] = np.linspace(0.9, 0.1, length)
    if inner_zero_at is not None:
        x[inner_zero_at] = 0.0
    return x


def test_strip_cuts_at_the_true_length_and_keeps_inner_zeros() -> None:
    x = np.stack([_beat(100), _beat(187), _beat(50, inner_zero_at=10), np.zeros(BEAT_LEN)])
    beats, lengths = strip_padding(x)
    assert lengths.tolist() == [100, 187, 50, 1]
    assert [len(b) for b in beats] == [100, 187, 50, 1]
    assert beats[2][10] == 0.0  # a zero inside the beat is signal, not padding
    assert np.array_equal(beats[0], x[0, :100].astype(np.float64))
    assert beats[3].tolist() == [0.0]  # an all-zero beat keeps one sample


def test_strip_real_fixture_beats_removes_only_zeros() -> None:
    x = signals(pd.read_parquet(FIXTURES / "beats_ptb.parquet"))
    beats, lengths = strip_padding(x)
    for row, (beat, length) in enumerate(zip(beats, lengths, strict=True)):
        assert beat[-1] != 0.0
        assert not x[row, length:].any()
    assert lengths.min() > 20 and lengths.max() <= BEAT_LEN


def test_group_by_length_partitions_the_rows() -> None:
    lengths = np.array([5, 3, 5, 187, 3, 5])
    groups = group_by_length(lengths)
    assert [g[0] for g in groups] == [3, 5, 187]
    rows = np.concatenate([g[1] for g in groups])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for length, idx in groups:
        assert (lengths[idx] == length).all()
        assert np.array_equal(idx, np.sort(idx))


def test_to_long_drops_padding() -> None:
    x = np.stack([_beat(3), _beat(2)])
    ids, time, value = to_long(x, ids=np.array([7, 9]))
    assert ids.tolist() == [7, 7, 7, 9, 9]
    assert time.tolist() == [0, 1, 2, 0, 1]
    assert np.allclose(value, np.concatenate([x[0, :3], x[1, :2]]))


def test_wrong_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\(n, 187\)"):
        as_beats(np.zeros((2, 186)))
    assert as_beats(np.zeros(BEAT_LEN)).shape == (1, BEAT_LEN)
