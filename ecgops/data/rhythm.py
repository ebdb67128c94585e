"""RR-interval (rhythm) context of each beat, computed within one record.

A beat's shape alone does not carry across patients; its timing does (de Chazal et al. 2004,
Mondéjar-Guerra et al. 2019). :func:`rr_context` takes the R-peaks of ALL annotated beats of a
record (classified or not, as the RR literature does) and gives, per peak, in seconds:

- ``rr_prev``: interval from the previous beat; the record's first beat has none and takes the
  first available interval (to the second beat);
- ``rr_next``: interval to the next beat (the last beat takes the last interval). With
  ``look_ahead: false`` it is not computed: the column is filled with ``rr_prev``, so the
  table keeps one layout and every feature depends on past beats only;
- ``rr_local``: mean of the last ``local_beats`` intervals ending at the beat (always causal;
  the first beat: ``rr_prev``);
- ``rr_mean``: mean RR over a running window of ``long_window_s`` seconds, centred on the beat
  with ``look_ahead``, else ending at it; ``long_window_s: null`` = the whole record
  (``look_ahead``) or the record so far (no look-ahead). An interval belongs to a window when
  the beat that ends it lies inside; an empty window falls back to ``rr_prev``;
- the ratios of ``ecgops.schema.RATIO_COLUMNS``: ``rr_prev / rr_local``, ``rr_next / rr_local``,
  ``rr_prev / rr_next``, ``rr_prev / rr_mean``, ``rr_local / rr_mean``.

No interval ever spans two records: call it once per record. Pure numpy, no I/O.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from ecgops.schema import CONTEXT_COLUMNS


class RhythmSettings(Protocol):
    """What :func:`rr_context` reads (``ecgops.config.RhythmConfig`` satisfies it)."""

    local_beats: int
    long_window_s: float | None
    look_ahead: bool


def _window_means(
    rr: np.ndarray, lo: np.ndarray, hi: np.ndarray, fallback: np.ndarray
) -> np.ndarray:
    """Mean of ``rr[lo[i]:hi[i]]`` per beat (``fallback[i]`` where the range is empty)."""
    cs = np.concatenate([[0.0], np.cumsum(rr)])
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[hi] - cs[lo]) / count
    return np.where(count > 0, mean, fallback)


def _long_window(
    t: np.ndarray, rr: np.ndarray, cfg: RhythmSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Interval index ranges ``[lo, hi)`` of each beat's long window (see the module doc)."""
    ends = t[1:]  # interval k ends at beat k + 1
    n = len(t)
    if cfg.long_window_s is None:
        lo = np.zeros(n, dtype=np.int64)
        hi = np.full(n, len(rr)) if cfg.look_ahead else np.arange(n)
        return lo, hi
    w = float(cfg.long_window_s)
    if cfg.look_ahead:
        lo = np.searchsorted(ends, t - w / 2, side="left")
        hi = np.searchsorted(ends, t + w / 2, side="right")
    else:
        lo = np.searchsorted(ends, t - w, side="right")
        hi = np.searchsorted(ends, t, side="right")
    return lo.astype(np.int64), hi.astype(np.int64)


def rr_context(peaks: np.ndarray, fs: float, cfg: RhythmSettings) -> pd.DataFrame:
    """RR context of every R-peak of one record.

    Args:
        peaks: sample indices of all the record's beats at rate ``fs``, strictly increasing.
        fs: sampling rate of ``peaks`` (Hz).
        cfg: the ``data.rhythm`` settings (``local_beats``, ``long_window_s``,
            ``look_ahead``).

    Returns:
        One row per peak (same order), columns ``ecgops.schema.CONTEXT_COLUMNS`` (float64,
        seconds or ratios). Fewer than two peaks give no interval: all values NaN.

    Raises:
        ValueError: peaks not strictly increasing (two beats at one sample), or ``fs`` not
            positive.
    """
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    t = np.asarray(peaks, dtype=np.float64) / float(fs)
    n = len(t)
    if n < 2:
        return pd.DataFrame(np.full((n, len(CONTEXT_COLUMNS)), np.nan), columns=CONTEXT_COLUMNS)
    rr = np.diff(t)
    if (rr <= 0).any():
        k = int(np.argmax(rr <= 0))
        raise ValueError(f"R-peaks must be strictly increasing (peak {k + 1}: {peaks[k + 1]})")
    prev = np.concatenate([[rr[0]], rr])
    nxt = np.concatenate([rr, [rr[-1]]]) if cfg.look_ahead else prev.copy()
    beat = np.arange(n)
    local = _window_means(rr, np.maximum(beat - cfg.local_beats, 0), beat, prev)
    mean = _window_means(rr, *_long_window(t, rr, cfg), prev)
    values = {
        "rr_prev": prev,
        "rr_next": nxt,
        "rr_local": local,
        "rr_mean": mean,
        "rr_prev_ratio": prev / local,
        "rr_next_ratio": nxt / local,
        "rr_prev_next_ratio": prev / nxt,
        "rr_prev_mean_ratio": prev / mean,
        "rr_local_mean_ratio": local / mean,
    }
    return pd.DataFrame(values, columns=CONTEXT_COLUMNS)
