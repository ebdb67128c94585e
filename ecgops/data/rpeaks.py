"""R-peaks of whole records that survive a dominant spike or baseline wander.

The study's rule (:func:`ecgops.data.beats.detect_r_peaks`: local maxima above 0.9 of each
min-max normalised 10 s window) finds fewer than two peaks in a window where one spike or a
wandering baseline takes the top of the range, and the record then gets no beat at all. The
study's single-lead tables keep that rule; records (prediction, the multi-lead table) use one
of these detectors, chosen by ``rpeaks.method`` (measured in ``benchmarks/bench_rpeaks.py``):

- ``xqrs``: wfdb's XQRS (run at ``rpeaks.detect_fs``) on the lead after a zero-phase
  Butterworth band-pass (``rpeaks.bandpass_hz``) and clipping of spikes (``rpeaks.clip_*``,
  :func:`clip_spikes`), each peak then moved to the band-passed
  lead's local maximum within ``rpeaks.refine_radius_s`` (the study's beats start at the R
  maximum);
- ``xqrs_vote``: XQRS on each lead of ``rpeaks.vote_leads`` that the record has; a peak is kept
  where at least ``rpeaks.vote_share`` of those leads agree within ``rpeaks.vote_tolerance_s``,
  placed on the peak lead's local maximum (multi-lead records only);
- ``study_filtered``: the study's rule (threshold, refractory distance) on the band-passed lead;
- ``study``: the study's rule as it is (for comparison).

When the chosen method finds fewer than two peaks, ``rpeaks.fallback`` (``study_filtered`` or
``none``) is tried. Every function here is pure: signals in, sample indices out. Peaks are
returned at the table's rate ``data.fs`` (125 Hz), as indices into the record resampled by
:func:`ecgops.data.wfdb_io.resample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecgops.config import DataConfig, RpeaksConfig
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.errors import DataError

METHODS = ("xqrs", "xqrs_vote", "study_filtered", "study")


@dataclass(frozen=True)
class RecordPeaks:
    """R-peaks of one record.

    Attributes:
        peaks: int64 sample indices at ``data.fs``, ascending, unique.
        method: the method that gave them (the fallback's name when it was used).
    """

    peaks: np.ndarray
    method: str


def bandpass(signal: np.ndarray, fs: float, band: Sequence[float], order: int) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections, forward and backward).

    Args:
        signal: 1-d signal (or 2-d, leads on the first axis).
        fs: sampling rate (Hz).
        band: ``(low, high)`` cut-offs in Hz; the high cut-off is kept below Nyquist.
        order: filter order.

    Returns:
        The filtered signal (float64, same shape).
    """
    from scipy.signal import butter, sosfiltfilt

    nyquist = fs / 2.0
    low, high = float(band[0]), min(float(band[1]), nyquist * 0.99)
    sos = butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    x = np.asarray(signal, dtype=np.float64)
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    return sosfiltfilt(sos, x, axis=-1, padlen=max(padlen, 0))


def xqrs_peaks(signal: np.ndarray, fs: float, detect_fs: float) -> np.ndarray:
    """QRS locations from wfdb's XQRS run at ``detect_fs``, as indices at ``fs``.

    XQRS finds nothing on the 1000 Hz PTB Diagnostic records (its learning phase fails and
    its default thresholds miss every beat) but works on the same signal at 250 Hz, so the
    lead is resampled to ``detect_fs`` first.

    Args:
        signal: one lead in mV (XQRS thresholds are in mV).
        fs: its sampling rate.
        detect_fs: the rate XQRS runs at.

    Returns:
        int64 sample indices at ``fs``, ascending; empty when XQRS finds none or gives up.
    """
    from wfdb import processing

    x = wfdb_io.resample(np.asarray(signal, dtype=np.float64), fs, detect_fs)
    try:
        det = processing.XQRS(x, fs=detect_fs)
        det.detect(verbose=False)
    except (ValueError, IndexError):  # XQRS gives up on some short or degenerate signals
        return np.zeros(0, dtype=np.int64)
    peaks = wfdb_io.to_rate(np.asarray(det.qrs_inds, dtype=np.int64), detect_fs, fs)
    return np.unique(np.clip(peaks, 0, max(len(signal) - 1, 0)))


def refine_peaks(signal: np.ndarray, peaks: np.ndarray, radius: int, direction: str) -> np.ndarray:
    """Move each peak to the signal's extreme within ``radius`` samples.

    Args:
        signal: the lead the peaks refer to.
        peaks: sample indices.
        radius: search radius in samples (0: unchanged).
        direction: ``up`` (maximum, the study's R-peak) or ``abs`` (largest magnitude).

    Returns:
        int64 indices, ascending and unique (two peaks moved onto one sample merge).
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    if radius <= 0 or not len(peaks):
        return np.unique(peaks)
    x = np.asarray(signal, dtype=np.float64)
    x = np.abs(x) if direction == "abs" else x
    out = np.empty_like(peaks)
    for i, p in enumerate(peaks):
        lo, hi = max(int(p) - radius, 0), min(int(p) + radius + 1, len(x))
        out[i] = lo + int(np.argmax(x[lo:hi]))
    return np.unique(out)


def clip_spikes(signal: np.ndarray, quantile: float | None, factor: float) -> np.ndarray:
    """Clip a (band-passed) lead at ``factor`` times its ``quantile`` of absolute values.

    QRS complexes fill a few per cent of an ECG's samples, so a high quantile of ``|x|`` is
    about the R amplitude, and a spike of a few samples does not move it; clipped, the spike
    no longer raises XQRS's adaptive threshold above the next beats.

    Args:
        signal: the lead.
        quantile: e.g. 0.99; None returns the lead unchanged.
        factor: clip level in units of that quantile.

    Returns:
        The clipped lead.
    """
    if quantile is None or not len(signal):
        return signal
    level = factor * float(np.quantile(np.abs(signal), quantile))
    return np.clip(signal, -level, level) if level > 0 else signal


def study_rule_peaks(
    signal: np.ndarray, data: DataConfig, raw: np.ndarray | None = None
) -> np.ndarray:
    """The study's rule applied window by window to a signal already at ``data.fs``.

    Args:
        signal: one lead at ``data.fs`` (raw or band-passed).
        data: the ``data`` section (window, threshold, refractory distance).
        raw: the unfiltered lead at ``data.fs``: its flat windows give no peaks (a filter's
            rounding noise there would otherwise normalise into false peaks).

    Returns:
        int64 sample indices into ``signal``, ascending.
    """
    params = bt.SegmentParams.from_config(data)
    detector = bt.make_detector(data, refractory=True)
    found = []
    for start in bt.window_starts(len(signal), params.window_len, params.keep_partial):
        stop = int(start) + params.window_len
        if raw is not None and bt.minmax_normalise(raw[int(start) : stop]) is None:
            continue
        window = bt.minmax_normalise(signal[int(start) : stop])
        if window is not None:
            found.append(detector(window) + int(start))
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def vote_peaks(candidates: list[np.ndarray], tolerance: int, min_votes: int) -> np.ndarray:
    """Peaks that at least ``min_votes`` leads found within ``tolerance`` samples of each other.

    Candidates of all leads are pooled and sorted; a cluster is a run whose neighbours are at
    most ``tolerance`` apart. A cluster counts each lead once.

    Args:
        candidates: per-lead peak indices (same rate).
        tolerance: samples.
        min_votes: leads needed.

    Returns:
        int64 cluster medians, ascending.
    """
    pooled = [(int(p), k) for k, c in enumerate(candidates) for p in c]
    if not pooled:
        return np.zeros(0, dtype=np.int64)
    pooled.sort()
    out: list[int] = []
    cluster = [pooled[0]]
    for item in pooled[1:]:
        if item[0] - cluster[-1][0] <= tolerance:
            cluster.append(item)
            continue
        if len({k for _, k in cluster}) >= min_votes:
            out.append(int(np.median([p for p, _ in cluster])))
        cluster = [item]
    if len({k for _, k in cluster}) >= min_votes:
        out.append(int(np.median([p for p, _ in cluster])))
    return np.asarray(out, dtype=np.int64)


def _to_target(
    peaks: np.ndarray, fs: float, lead: np.ndarray, rp: RpeaksConfig, data: DataConfig
) -> np.ndarray:
    """Peaks at ``fs`` mapped to ``data.fs``, onto the resampled raw lead's local maximum.

    Resampling and rounding can move the maximum by a sample; the beats are cut from the raw
    lead at ``data.fs`` and, as the study's, start at its maximum (``rpeaks.target_refine``).
    """
    resampled = wfdb_io.resample(lead, fs, data.fs)
    mapped = wfdb_io.to_rate(peaks, fs, data.fs)
    mapped = np.unique(mapped[(mapped >= 0) & (mapped < len(resampled))])
    return refine_peaks(resampled, mapped, rp.target_refine, rp.refine_direction)


def _single_lead(
    signal: np.ndarray, fs: float, method: str, rp: RpeaksConfig, data: DataConfig
) -> np.ndarray:
    """Peaks at ``data.fs`` of one lead by a single-lead method."""
    if method == "study":
        return study_rule_peaks(wfdb_io.resample(signal, fs, data.fs), data)
    filtered = bandpass(signal, fs, rp.bandpass_hz, rp.filter_order)
    if method == "study_filtered":
        raw = wfdb_io.resample(signal, fs, data.fs)
        return study_rule_peaks(wfdb_io.resample(filtered, fs, data.fs), data, raw)
    clipped = clip_spikes(filtered, rp.clip_quantile, rp.clip_factor)
    radius = int(round(rp.refine_radius_s * fs))
    peaks = refine_peaks(
        filtered, xqrs_peaks(clipped, fs, rp.detect_fs), radius, rp.refine_direction
    )
    return _to_target(peaks, fs, signal, rp, data)


def _voted(
    leads: np.ndarray, fs: float, peak_index: int, rp: RpeaksConfig, data: DataConfig
) -> np.ndarray:
    """Peaks at ``data.fs`` agreed on by several leads (``leads``: (n_leads, n) at ``fs``)."""
    filtered = bandpass(leads, fs, rp.bandpass_hz, rp.filter_order)
    clipped = [clip_spikes(f, rp.clip_quantile, rp.clip_factor) for f in filtered]
    candidates = [xqrs_peaks(c, fs, rp.detect_fs) for c in clipped]
    min_votes = max(1, int(np.ceil(rp.vote_share * len(candidates))))
    voted = vote_peaks(candidates, int(round(rp.vote_tolerance_s * fs)), min_votes)
    radius = int(round(rp.refine_radius_s * fs))
    peaks = refine_peaks(filtered[peak_index], voted, radius, rp.refine_direction)
    return _to_target(peaks, fs, leads[peak_index], rp, data)


def detect_record_peaks(
    leads: np.ndarray,
    fs: float,
    rp: RpeaksConfig,
    data: DataConfig,
    peak_index: int = 0,
    method: str | None = None,
) -> RecordPeaks:
    """R-peaks of a record at ``data.fs``, with the configured fallback.

    Args:
        leads: the record's leads at ``fs`` in mV, shape ``(n_leads, n_samples)`` (a 1-d array
            is one lead). Single-lead methods use ``leads[peak_index]``; ``xqrs_vote`` uses
            every row (the caller passes the ``rpeaks.vote_leads`` it has).
        fs: sampling rate of ``leads``.
        rp: the ``rpeaks`` section.
        data: the ``data`` section (target rate, windows, the study's rule).
        peak_index: row of the lead the peaks are placed on (lead II).
        method: overrides ``rp.method`` (benchmarks).

    Returns:
        The :class:`RecordPeaks`.

    Raises:
        ValueError: unknown method.
    """
    method = method or rp.method
    if method not in METHODS:
        raise ValueError(f"unknown R-peak method {method!r}; expected one of {', '.join(METHODS)}")
    x = np.atleast_2d(np.asarray(leads, dtype=np.float64))
    if not np.ptp(x[peak_index]) > 0:  # a flat lead has no peaks, whatever a filter makes of it
        return RecordPeaks(np.zeros(0, dtype=np.int64), method)
    if method == "xqrs_vote":
        peaks = _voted(x, fs, peak_index, rp, data)
    else:
        peaks = _single_lead(x[peak_index], fs, method, rp, data)
    if len(peaks) < 2 and rp.fallback != "none" and rp.fallback != method:
        return RecordPeaks(_single_lead(x[peak_index], fs, rp.fallback, rp, data), rp.fallback)
    return RecordPeaks(np.asarray(peaks, dtype=np.int64), method)


def segment_record(signal: np.ndarray, peaks: np.ndarray, data: DataConfig) -> bt.Segmentation:
    """The study's segmentation of one lead at ``data.fs`` with given R-peaks, stubs dropped.

    Args:
        signal: one lead already at ``data.fs``.
        peaks: R-peaks at ``data.fs`` (e.g. :func:`detect_record_peaks`).
        data: the ``data`` section.

    Returns:
        The :class:`~ecgops.data.beats.Segmentation` (beats start at the R-peaks).
    """
    params = bt.SegmentParams.from_config(data)
    seg = bt.segment(signal, params, peaks=np.sort(np.asarray(peaks, dtype=np.int64)))
    return bt.drop_stubs(seg, params.min_span)


def require_beats(seg: bt.Segmentation, record: str, n_peaks: int, method: str) -> None:
    """Raise a clear error when a record has no usable beat.

    Args:
        seg: the record's segmentation.
        record: the record's path or id (named in the message).
        n_peaks: R-peaks the detector found.
        method: the detector's name.

    Raises:
        DataError: the segmentation holds no beat.
    """
    if len(seg):
        return
    raise DataError(
        record,
        f"no usable beat: the {method} detector found {n_peaks} R-peak(s); every one of the "
        f"{seg.n_windows} window(s) had fewer than two (or was flat). Is the lead connected?",
    )
