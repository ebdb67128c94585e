"""Heartbeat extraction of Kachuee, Fazeli & Sarrafzadeh (2018), plus R-peak statistics.

The procedure, on one lead already resampled to ``fs`` (125 Hz):

1. split the signal into consecutive windows of ``window_s`` (10 s); a trailing window that is
   shorter is dropped (``partial_window: drop``) or kept (``keep``);
2. min-max normalise each window to [0, 1] (a flat window gives no beats);
3. R-peaks: given (MIT-BIH reference annotations mapped to ``fs``) or detected in the
   normalised window (PTB: local maxima above ``peak_threshold``, at least ``refractory_s``
   apart; the paper's rule alone has no distance, see :func:`detect_r_peaks`);
4. a window with fewer than ``min_beats_per_window`` R-peaks gives no beats; otherwise its
   nominal period ``T`` is the median RR interval of its R-peaks;
5. each beat is the normalised window from its R-peak for ``round(period_factor * T)``
   samples, cut to ``beat_len`` (187) or zero-padded at the end.

The last beat of a window usually runs past the window's end. The paper keeps what is there
and zero-pads it (``last_beat: pad``, the default: it reproduces the study's counts); with
``last_beat: drop`` a beat whose ``min(round(period_factor * T), beat_len)`` samples do not
fit in the window is dropped instead. Either way a beat never reads samples of the next
window, whose normalisation differs. With ``pad``, an R-peak just before the window's end
leaves a stub of a few samples followed by zeros: not a heartbeat. :func:`drop_stubs` removes
beats with less than ``min_beat_s`` (0.16 s = 20 samples) of signal; on the 44 MIT-BIH records
that is 1,551 of 99,926 beats (the README's reference count keeps them; ``min_beat_s: 0``
reproduces it exactly). Peak statistics are taken before the stubs are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ecgops.config import DataConfig

Detector = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SegmentParams:
    """The numbers of the segmentation, taken from ``cfg.data``."""

    fs: int
    window_len: int
    beat_len: int
    period_factor: float
    min_beats: int
    keep_partial: bool
    drop_last: bool
    min_span: int

    @classmethod
    def from_config(cls, data: DataConfig) -> SegmentParams:
        """Build the parameters from the ``data`` section of the config."""
        return cls(
            fs=data.fs,
            window_len=int(round(data.window_s * data.fs)),
            beat_len=data.beat_len,
            period_factor=data.period_factor,
            min_beats=data.min_beats_per_window,
            keep_partial=data.partial_window == "keep",
            drop_last=data.last_beat == "drop",
            min_span=int(round(data.min_beat_s * data.fs)),
        )


@dataclass(frozen=True)
class Segmentation:
    """Beats cut from one record.

    Attributes:
        beats: float32 array (n, beat_len), values in [0, 1], zero padding at the end only.
        peak: each beat's R-peak as a sample index (at ``fs``) into the record.
        peak_id: index of the beat's R-peak in the given peak array (detected: in detection
            order over the whole record).
        span: samples of signal in each beat before padding.
        period: the beat's window period ``T`` in samples.
        n_windows: windows looked at.
        empty_windows: windows that gave no beats (flat, or too few R-peaks).
    """

    beats: np.ndarray
    peak: np.ndarray
    peak_id: np.ndarray
    span: np.ndarray
    period: np.ndarray
    n_windows: int
    empty_windows: int

    def __len__(self) -> int:
        return len(self.beats)


def window_starts(n_samples: int, window_len: int, keep_partial: bool = False) -> np.ndarray:
    """Start indices of consecutive, non-overlapping windows.

    Args:
        n_samples: signal length.
        window_len: window length in samples.
        keep_partial: keep a trailing window shorter than ``window_len``.

    Returns:
        int64 array of window starts.
    """
    full = n_samples // window_len
    n = full + (1 if keep_partial and n_samples % window_len else 0)
    return np.arange(n, dtype=np.int64) * window_len


def minmax_normalise(x: np.ndarray) -> np.ndarray | None:
    """Scale a window to [0, 1]; None when it is flat (max == min)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if not hi > lo:
        return None
    return (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)


def detect_r_peaks(window: np.ndarray, threshold: float, distance: int | None) -> np.ndarray:
    """R-peaks of a normalised window: local maxima above ``threshold``.

    With ``distance`` (samples), of maxima closer than that only the highest is kept
    (``scipy.signal.find_peaks``); ``None`` gives the paper's rule alone.

    Args:
        window: min-max normalised window.
        threshold: minimum height of a peak (e.g. 0.9).
        distance: refractory distance in samples, or None.

    Returns:
        int64 sample indices into the window, ascending.
    """
    from scipy.signal import find_peaks

    kwargs = {"height": threshold}
    if distance and distance >= 1:
        kwargs["distance"] = int(distance)
    peaks, _ = find_peaks(window, **kwargs)
    return peaks.astype(np.int64)


def make_detector(data: DataConfig, refractory: bool = True) -> Detector:
    """The PTB R-peak rule from the config, with or without its refractory distance."""
    distance = int(round(data.refractory_s * data.fs)) if refractory else None
    threshold = data.peak_threshold

    def detector(window: np.ndarray) -> np.ndarray:
        return detect_r_peaks(window, threshold, distance)

    return detector


def window_beats(
    window: np.ndarray, peaks: np.ndarray, params: SegmentParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Cut the beats of one normalised window.

    Args:
        window: normalised window.
        peaks: R-peak indices into the window, ascending (at least ``min_beats``).
        params: segmentation parameters.

    Returns:
        ``(beats, span, kept, period)``: beats (k, beat_len) float32, their spans, the indices
        into ``peaks`` of the kept beats, and the window's period ``T`` in samples.
    """
    period = float(np.median(np.diff(peaks)))
    length = min(int(round(params.period_factor * period)), params.beat_len)
    n = len(window)
    kept = np.arange(len(peaks))
    if params.drop_last:
        kept = kept[peaks + length <= n]
    beats = np.zeros((len(kept), params.beat_len), dtype=np.float32)
    span = np.zeros(len(kept), dtype=np.int64)
    for row, i in enumerate(kept):
        start = int(peaks[i])
        piece = window[start : min(start + length, n)]
        beats[row, : len(piece)] = piece
        span[row] = len(piece)
    return beats, span, kept, period


def segment(
    signal: np.ndarray,
    params: SegmentParams,
    peaks: np.ndarray | None = None,
    detector: Detector | None = None,
) -> Segmentation:
    """Cut a whole record into beats (Kachuee et al. 2018).

    Args:
        signal: one lead at ``params.fs``.
        params: segmentation parameters.
        peaks: reference R-peaks (sample indices at ``params.fs``, ascending), or None.
        detector: R-peak detector on a normalised window, used when ``peaks`` is None.

    Returns:
        The :class:`Segmentation` of the record.
    """
    if (peaks is None) == (detector is None):
        raise ValueError("give exactly one of peaks and detector")
    starts = window_starts(len(signal), params.window_len, params.keep_partial)
    out_beats, out_peak, out_id, out_span, out_period = [], [], [], [], []
    empty = 0
    detected_so_far = 0
    for start in starts:
        stop = min(int(start) + params.window_len, len(signal))
        window = minmax_normalise(signal[start:stop])
        if window is None:
            empty += 1
            continue
        if peaks is not None:
            lo, hi = np.searchsorted(peaks, [start, stop])
            local = peaks[lo:hi] - start
            ids = np.arange(lo, hi)
        else:
            local = detector(window)
            ids = detected_so_far + np.arange(len(local))
            detected_so_far += len(local)
        if len(local) < max(params.min_beats, 2):
            empty += 1
            continue
        beats, span, kept, period = window_beats(window, local, params)
        if not len(kept):
            empty += 1
            continue
        out_beats.append(beats)
        out_peak.append(local[kept] + start)
        out_id.append(ids[kept])
        out_span.append(span)
        out_period.append(np.full(len(kept), period))
    if not out_beats:
        return Segmentation(
            beats=np.zeros((0, params.beat_len), dtype=np.float32),
            peak=np.zeros(0, dtype=np.int64),
            peak_id=np.zeros(0, dtype=np.int64),
            span=np.zeros(0, dtype=np.int64),
            period=np.zeros(0, dtype=np.float64),
            n_windows=len(starts),
            empty_windows=empty,
        )
    return Segmentation(
        beats=np.concatenate(out_beats),
        peak=np.concatenate(out_peak).astype(np.int64),
        peak_id=np.concatenate(out_id).astype(np.int64),
        span=np.concatenate(out_span),
        period=np.concatenate(out_period),
        n_windows=len(starts),
        empty_windows=empty,
    )


def drop_stubs(seg: Segmentation, min_span: int) -> Segmentation:
    """Remove beats with fewer than ``min_span`` samples of signal before their padding.

    Args:
        seg: a segmentation.
        min_span: minimum samples of signal (0 keeps everything).

    Returns:
        The segmentation without the stubs (window counts unchanged).
    """
    keep = seg.span >= min_span
    if keep.all():
        return seg
    return Segmentation(
        beats=seg.beats[keep],
        peak=seg.peak[keep],
        peak_id=seg.peak_id[keep],
        span=seg.span[keep],
        period=seg.period[keep],
        n_windows=seg.n_windows,
        empty_windows=seg.empty_windows,
    )


# ---- R-peak statistics ------------------------------------------------------------------


@dataclass
class RecordPeakStats:
    """What one record contributes to the peak statistics of a build.

    Attributes:
        source: data source (``mitdb``, ``ptbxl``, ``ptbdb``).
        record: record id.
        label: class name of the record (PTB) or None (MIT-BIH: per beat).
        duration_s: length of the windows used, in seconds.
        hr_bpm: independent heart rate (MIT-BIH: annotations; PTB: wfdb ``xqrs``) or None.
        beats: beats per R-peak variant (e.g. ``refractory``, ``no_refractory``).
        short: beats shorter than ``short_beat_s`` per variant.
        stubs: beats of the table's variant dropped as stubs (less than ``min_beat_s``).
        hits: MIT-BIH only: detected peaks matching an annotated beat, per variant.
        detected: MIT-BIH only: R-peaks detected by the PTB rule that gave beats, per variant.
        reference: MIT-BIH only: annotated beats in the record's windows.
    """

    source: str
    record: str
    label: str | None
    duration_s: float
    hr_bpm: float | None
    beats: dict[str, int] = field(default_factory=dict)
    short: dict[str, int] = field(default_factory=dict)
    stubs: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    detected: dict[str, int] = field(default_factory=dict)
    reference: int = 0


def count_short(span: np.ndarray, fs: float, short_beat_s: float) -> int:
    """Number of beats whose signal (before padding) is shorter than ``short_beat_s``."""
    return int((np.asarray(span) < short_beat_s * fs).sum())


def heart_rate_from_peaks(peaks: np.ndarray, fs: float) -> float | None:
    """Heart rate (bpm) from the median RR interval of R-peaks; None with fewer than two."""
    if len(peaks) < 2:
        return None
    rr = np.diff(np.sort(np.asarray(peaks))) / fs
    rr = rr[rr > 0]
    return float(60.0 / np.median(rr)) if len(rr) else None


def reference_heart_rate(signal: np.ndarray, fs: float) -> float | None:
    """Independent heart rate (bpm) of a record from wfdb's XQRS detector.

    Args:
        signal: one lead at its original sampling rate.
        fs: its sampling rate.

    Returns:
        60 / median RR of the detected QRS complexes, or None when XQRS finds fewer than two.
    """
    from wfdb import processing

    try:
        qrs = processing.xqrs_detect(np.asarray(signal, dtype=np.float64), fs=fs, verbose=False)
    except Exception:  # XQRS gives up on some short or flat signals
        return None
    return heart_rate_from_peaks(np.asarray(qrs), fs)


def match_peaks(detected: np.ndarray, reference: np.ndarray, tolerance: int) -> int:
    """Detected peaks within ``tolerance`` samples of a distinct reference peak (greedy)."""
    if not len(detected) or not len(reference):
        return 0
    ref = np.sort(reference)
    used = np.zeros(len(ref), dtype=bool)
    hits = 0
    for p in np.sort(detected):
        i = int(np.searchsorted(ref, p))
        best = None
        for j in (i - 1, i):
            if not (0 <= j < len(ref)) or used[j]:
                continue
            gap = abs(int(ref[j]) - int(p))
            if gap <= tolerance and (best is None or gap < abs(int(ref[best]) - int(p))):
                best = j
        if best is not None:
            used[best] = True
            hits += 1
    return hits


def summarise_peak_stats(
    records: Iterable[RecordPeakStats], hr_bins: list[float], primary: str
) -> dict:
    """Peak statistics of a build, per R-peak variant.

    For each variant: beats, share of beats shorter than ``short_beat_s``, beats per record,
    beats per minute against the independent heart rate (ratio median, and per heart-rate
    band), the share by record class, and for MIT-BIH the detector's sensitivity and positive
    predictivity against the reference annotations.

    Args:
        records: per-record statistics.
        hr_bins: heart-rate band edges (bpm).
        primary: the variant that produced the table's beats.

    Returns:
        A JSON-ready dict.
    """
    records = list(records)
    variants = sorted({v for r in records for v in r.beats}, key=lambda v: (v != primary, v))
    out: dict = {
        "primary": primary,
        "records": len(records),
        "stubs_dropped": int(sum(r.stubs for r in records)),
        "variants": {},
    }
    bins = np.asarray(hr_bins, dtype=np.float64)
    for v in variants:
        rows = [r for r in records if v in r.beats]
        beats = np.array([r.beats[v] for r in rows], dtype=np.float64)
        short = np.array([r.short.get(v, 0) for r in rows], dtype=np.float64)
        minutes = np.array([r.duration_s / 60.0 for r in rows])
        hr = np.array([r.hr_bpm if r.hr_bpm else np.nan for r in rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            bpm = beats / minutes
            ratio = bpm / hr
        total = float(beats.sum())
        stats: dict = {
            "beats": int(total),
            "short_beats": int(short.sum()),
            "short_share": round(float(short.sum() / total), 4) if total else None,
            "beats_per_record_mean": round(float(beats.mean()), 2) if len(beats) else None,
            "beats_per_record_median": float(np.median(beats)) if len(beats) else None,
        }
        ok = np.isfinite(ratio)
        if ok.any():
            stats["beats_per_min_over_hr_median"] = round(float(np.median(ratio[ok])), 3)
            stats["records_over_1_5x_hr"] = int((ratio[ok] > 1.5).sum())
            bands = []
            idx = np.digitize(hr, bins) - 1
            for b in range(len(bins) - 1):
                sel = ok & (idx == b)
                if sel.any():
                    bands.append(
                        {
                            "hr_bpm": [float(bins[b]), float(bins[b + 1])],
                            "records": int(sel.sum()),
                            "hr_mean": round(float(hr[sel].mean()), 1),
                            "beats_per_min_mean": round(float(bpm[sel].mean()), 1),
                            "beats_per_record_mean": round(float(beats[sel].mean()), 2),
                        }
                    )
            stats["by_heart_rate"] = bands
        labels = sorted({r.label for r in rows if r.label is not None})
        if labels:
            stats["by_class"] = {}
            for lab in labels:
                sel = np.array([r.label == lab for r in rows])
                n = float(beats[sel].sum())
                stats["by_class"][lab] = {
                    "records": int(sel.sum()),
                    "beats": int(n),
                    "short_share": round(float(short[sel].sum() / n), 4) if n else None,
                }
        if any(v in r.detected for r in rows):
            det = sum(r.detected.get(v, 0) for r in rows)
            hits = sum(r.hits.get(v, 0) for r in rows)
            ref = sum(r.reference for r in rows)
            stats["vs_annotations"] = {
                "detected": det,
                "reference": ref,
                "hits": hits,
                "sensitivity": round(hits / ref, 4) if ref else None,
                "positive_predictivity": round(hits / det, 4) if det else None,
            }
        out["variants"][v] = stats
    return out
