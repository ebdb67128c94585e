"""Streaming a WFDB record for ``ecgops annotate``: lead choice, chunked resampling, R-peaks.

- :func:`choose_lead`: ``data.mitbih.lead`` by name (any case), else the first of
  ``annotate.lead_fallbacks`` the record has, else channel ``data.mitbih.fallback_channel``.
- :func:`chunk_plan` / :func:`resampled_chunk`: the lead resampled to ``data.fs`` chunk by
  chunk. Chunks are whole segmentation windows (about ``annotate.chunk_s`` seconds) starting at
  a multiple of the resampling ratio's numerator, read with ``annotate.resample_margin_s`` of
  signal on both sides, so each chunk equals the same samples of the whole record resampled at
  once (:func:`ecgops.data.wfdb_io.resample`) and memory is bounded by the chunk.
- :func:`reference_peaks`: the classified beats of the reference annotations (and their RR
  context, as the beat table computes it).
- :func:`detect_peaks`: a ``wfdb.processing`` QRS detector (``annotate.detector``) run chunk
  by chunk with ``annotate.detector_overlap_s`` of context on each side; a peak belongs to the
  chunk it falls in, and peaks closer than ``data.refractory_s`` are kept once.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.errors import DataError

log = logging.getLogger(__name__)

REFERENCE = "reference"
RATIO_DENOMINATOR = 10_000
"""Largest denominator of the resampling ratio (as in :func:`ecgops.data.wfdb_io.resample`)."""


# ---- lead and signal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadChoice:
    """The channel used for a record and why."""

    channel: int
    name: str
    how: str


def choose_lead(sig_names: list[str], cfg: Config, where: Path) -> LeadChoice:
    """Pick the lead: the configured one, a fallback name, else the fallback channel.

    Args:
        sig_names: the record's signal names.
        cfg: configuration (``data.mitbih.lead``, ``annotate.lead_fallbacks``,
            ``data.mitbih.fallback_channel``).
        where: the header file, for messages.

    Returns:
        The :class:`LeadChoice`.

    Raises:
        DataError: the record has no signals.
    """
    if not sig_names:
        raise DataError(where, "the record has no signals")
    lower = [s.strip().lower() for s in sig_names]
    for rank, wanted in enumerate([cfg.data.mitbih.lead, *cfg.annotate.lead_fallbacks]):
        if wanted.strip().lower() in lower:
            channel = lower.index(wanted.strip().lower())
            how = "configured lead" if rank == 0 else "fallback lead name"
            return LeadChoice(channel, sig_names[channel], how)
    channel = cfg.data.mitbih.fallback_channel
    channel = channel if 0 <= channel < len(sig_names) else 0
    return LeadChoice(channel, sig_names[channel], "fallback channel (no known lead name)")


def read_samples(record: Path, channel: int, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of one channel in physical units.

    Raises:
        DataError: the signal file is unreadable or holds missing (NaN) samples there.
    """
    import wfdb

    try:
        rec = wfdb.rdrecord(str(record), sampfrom=start, sampto=stop, channels=[channel])
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on short files
        raise DataError(record, f"unreadable signal (samples {start}-{stop}): {exc}") from exc
    signal = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
    if not np.isfinite(signal).all():
        raise DataError(record, f"missing (NaN) samples between samples {start} and {stop}")
    return signal


@dataclass(frozen=True)
class ChunkPlan:
    """How a record is cut into chunks at the model's rate (see the module docstring)."""

    fs_in: float
    fs_out: float
    up: int
    down: int
    n_in: int
    chunk_out: int
    margin_in: int

    @property
    def n_out(self) -> int:
        """Length of the whole record resampled (as :func:`wfdb_io.resample` gives it)."""
        return math.ceil(self.n_in * self.up / self.down)

    def chunks(self) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each chunk in resampled samples."""
        for start in range(0, self.n_out, self.chunk_out):
            yield start, min(start + self.chunk_out, self.n_out)


def chunk_plan(cfg: Config, fs_in: float, n_in: int) -> ChunkPlan:
    """Chunks of whole windows whose starts keep the whole record's resampling phase.

    Args:
        cfg: configuration (``data``, ``annotate.chunk_s``, ``annotate.resample_margin_s``).
        fs_in: the record's sampling rate.
        n_in: its length in samples.

    Returns:
        The :class:`ChunkPlan`.
    """
    ratio = Fraction(cfg.data.fs).limit_denominator(RATIO_DENOMINATOR) / Fraction(
        fs_in
    ).limit_denominator(RATIO_DENOMINATOR)
    up, down = ratio.numerator, ratio.denominator
    params = bt.SegmentParams.from_config(cfg.data)
    unit = math.lcm(params.window_len, up)
    chunk_out = max(1, round(cfg.annotate.chunk_s * cfg.data.fs / unit)) * unit
    margin_in = math.ceil(cfg.annotate.resample_margin_s * fs_in / down) * down
    return ChunkPlan(float(fs_in), float(cfg.data.fs), up, down, n_in, chunk_out, margin_in)


def resampled_chunk(record: Path, channel: int, plan: ChunkPlan, start: int, stop: int):
    """Resampled samples ``[start, stop)`` of the lead, equal to the whole record's.

    Returns:
        float64 array of ``stop - start`` samples at ``plan.fs_out``.
    """
    first = start * plan.down // plan.up  # exact: chunk starts are multiples of ``up``
    lo = max(0, first - plan.margin_in)
    last = plan.n_in if stop >= plan.n_out else stop * plan.down // plan.up
    hi = min(plan.n_in, last + plan.margin_in)
    signal = wfdb_io.resample(read_samples(record, channel, lo, hi), plan.fs_in, plan.fs_out)
    offset = lo * plan.up // plan.down
    return signal[start - offset : stop - offset]


# ---- R-peaks -----------------------------------------------------------------------------------


def reference_peaks(
    cfg: Config, record: Path, fs: float, with_context: bool
) -> tuple[np.ndarray, pd.DataFrame | None]:
    """The record's classified beats (beat symbols only) at its own rate, as training reads them.

    Args:
        cfg: configuration (``data.mitbih``, ``data.rhythm``).
        record: record path without extension.
        fs: the record's sampling rate.
        with_context: also compute each beat's RR context exactly as the beat table does
            (``ecgops.data.sources.mitdb.beat_context``: intervals over all the record's beats).

    Returns:
        ``(samples ascending, context or None)``; context has one row per sample.

    Raises:
        DataError: the annotation file is missing or unreadable.
    """
    from ecgops.data.sources import mitdb

    ann = wfdb_io.read_annotations(record, cfg.data.mitbih.annotator)
    if with_context:
        samples, _, context = mitdb.beat_context(cfg, record, ann, fs)
        return np.asarray(samples, dtype=np.int64), context.reset_index(drop=True)
    samples, _ = mitdb.beat_annotations(ann, mitdb.symbol_labels(cfg.data.mitbih.beat_symbols))
    return np.sort(samples, kind="stable"), None


def run_detector(signal: np.ndarray, fs: float, detector: str) -> np.ndarray:
    """QRS locations found by a ``wfdb.processing`` detector (empty when it gives up)."""
    from wfdb import processing

    try:
        if detector == "gqrs":
            found = processing.gqrs_detect(sig=signal, fs=fs)
        else:
            found = processing.xqrs_detect(signal, fs=fs, verbose=False)
    except Exception as exc:  # noqa: BLE001 - XQRS raises on flat or very short signals
        log.warning("%s found no QRS in a %.1f s segment: %s", detector, len(signal) / fs, exc)
        return np.zeros(0, dtype=np.int64)
    return np.asarray(found, dtype=np.int64)


def detect_peaks(
    cfg: Config, record: Path, channel: int, fs: float, n_samples: int, progress: bool
) -> np.ndarray:
    """R-peaks of a whole record from the configured detector, chunk by chunk.

    Returns:
        int64 sample indices at the record's rate, ascending, at least ``data.refractory_s``
        apart.
    """
    from tqdm import tqdm

    step = max(1, round(cfg.annotate.chunk_s * fs))
    overlap = round(cfg.annotate.detector_overlap_s * fs)
    found = []
    bar = tqdm(total=round(n_samples / fs), unit="s", desc=f"detect {record.name}",
               disable=not progress or None, file=sys.stderr)  # fmt: skip
    with bar:
        for start in range(0, n_samples, step):
            stop = min(start + step, n_samples)
            lo, hi = max(0, start - overlap), min(n_samples, stop + overlap)
            peaks = run_detector(read_samples(record, channel, lo, hi), fs, cfg.annotate.detector)
            peaks = peaks + lo
            found.append(peaks[(peaks >= start) & (peaks < stop)])
            bar.update(round((stop - start) / fs))
    peaks = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    return drop_close(peaks, round(cfg.data.refractory_s * fs))


def drop_close(peaks: np.ndarray, distance: int) -> np.ndarray:
    """Keep the first of peaks closer than ``distance`` samples (one QRS seen by two chunks)."""
    if len(peaks) < 2 or distance < 1:
        return peaks
    keep = [0]
    for i in range(1, len(peaks)):
        if peaks[i] - peaks[keep[-1]] >= distance:
            keep.append(i)
    return peaks[np.asarray(keep)]
