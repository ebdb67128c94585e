"""MIT-BIH Arrhythmia Database (``mitdb/NNN.{hea,dat,atr}``) to labelled beats.

Lead MLII picked by name (``data.mitbih.lead``; 102 and 104 have none and use
``fallback_channel``, logged); R-peaks and labels from the reference annotations, mapped to the
AAMI classes of ``data.mitbih.beat_symbols`` (N, S, V, F, Q in that label order); other symbols
are not rows of the table. One patient per record (``patient = record``; note that 201 and
202 come from the same subject in the database, so a split by record is inter-record, not
strictly inter-patient). Every row keeps its R-peak position (``sample`` at the record's own
rate, ``time_s``) and its RR context (``ecgops.data.rhythm``), computed on ALL the record's
beats (``data.mitbih.rr_symbols`` plus the classified ones), not only the classified rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config, DataConfig
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.data.rhythm import rr_context
from ecgops.data.sources import RecordBeats, SourceReport, cap, read_records_file
from ecgops.errors import DataError
from ecgops.schema import CONTEXT_COLUMNS

log = logging.getLogger(__name__)

SOURCE = "mitdb"
PRIMARY = "annotations"


def symbol_labels(beat_symbols: dict[str, list[str]]) -> dict[str, int]:
    """Map each beat symbol to its AAMI class index (the order of ``beat_symbols``).

    Args:
        beat_symbols: class name -> annotation symbols, e.g. ``{"N": ["N", "L", ...], ...}``.

    Returns:
        Symbol -> label.

    Raises:
        ValueError: a symbol is listed under two classes.
    """
    out: dict[str, int] = {}
    for label, symbols in enumerate(beat_symbols.values()):
        for s in symbols:
            if s in out:
                raise ValueError(f"beat symbol {s!r} is listed under two classes")
            out[s] = label
    return out


def beat_annotations(
    ann: wfdb_io.Annotations, mapping: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the beat annotations: (samples, labels), non-beat symbols dropped."""
    keep = np.array([s in mapping for s in ann.symbol], dtype=bool)
    labels = np.array([mapping[s] for s in ann.symbol[keep]], dtype=np.int64)
    return ann.sample[keep], labels


def annotated_beats(
    ann: wfdb_io.Annotations, mapping: dict[str, int], rr_symbols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Classified beats and all beats of a record, in sample order.

    Args:
        ann: the record's annotations.
        mapping: symbol -> label of the classified beats (:func:`symbol_labels`).
        rr_symbols: further symbols that are beats for the RR context (not rows).

    Returns:
        ``(samples, labels, position, all_samples)``: the classified beats' samples and
        labels, each one's index into ``all_samples``, and the samples of every beat
        (classified or in ``rr_symbols``).
    """
    order = np.argsort(ann.sample, kind="stable")
    sample, symbol = ann.sample[order], ann.symbol[order]
    classified = np.array([s in mapping for s in symbol], dtype=bool)
    is_beat = classified | np.isin(symbol.astype(str), list(rr_symbols))
    position = np.cumsum(is_beat) - 1
    labels = np.array([mapping[s] for s in symbol[classified]], dtype=np.int64)
    return sample[classified], labels, position[classified], sample[is_beat]


def beat_context(
    cfg: Config, path: Path, ann: wfdb_io.Annotations, fs: float
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Classified beats of a record with their position and RR context.

    Args:
        cfg: configuration (``data.mitbih``, ``data.rhythm``).
        path: record path (named in errors).
        ann: its annotations.
        fs: the record's sampling rate.

    Returns:
        ``(samples, labels, context)``: the classified beats in sample order and, per beat,
        ``sample``, ``time_s`` and the ``CONTEXT_COLUMNS``.

    Raises:
        DataError: two beat annotations at one sample (no RR interval).
    """
    mit = cfg.data.mitbih
    samples, labels, position, every = annotated_beats(
        ann, symbol_labels(mit.beat_symbols), mit.rr_symbols
    )
    try:
        rr = rr_context(every, fs, cfg.data.rhythm)
    except ValueError as exc:
        raise DataError(path.with_name(f"{path.name}.{mit.annotator}"), str(exc)) from exc
    context = pd.DataFrame({"sample": samples.astype(np.int64), "time_s": samples / fs})
    context[CONTEXT_COLUMNS] = rr.to_numpy()[position]
    return samples, labels, context


def record_beats(cfg: Config, path: Path, report: SourceReport | None = None) -> RecordBeats:
    """Beats, labels and peak statistics of one MIT-BIH record.

    Args:
        cfg: configuration (``data`` section).
        path: record path without extension.
        report: where a fallback lead is noted (optional).

    Returns:
        The record's :class:`RecordBeats` (possibly with no beats).

    Raises:
        DataError: the record or its annotations cannot be read.
    """
    data: DataConfig = cfg.data
    mit = data.mitbih
    lead = wfdb_io.read_lead(path, mit.lead, mit.fallback_channel)
    if report is not None and lead.name.lower() != mit.lead.lower():
        report.fallback_lead[path.name] = lead.name
    ann = wfdb_io.read_annotations(path, mit.annotator)
    samples, labels, context = beat_context(cfg, path, ann, lead.fs)
    peaks = wfdb_io.to_rate(samples, lead.fs, data.fs)
    signal = wfdb_io.resample(lead.signal, lead.fs, data.fs)
    params = bt.SegmentParams.from_config(data)
    seg = bt.segment(signal, params, peaks=peaks)
    table = bt.drop_stubs(seg, params.min_span)

    n_windows = seg.n_windows
    covered = n_windows * params.window_len
    reference = peaks[peaks < covered]
    stats = bt.RecordPeakStats(
        source=SOURCE,
        record=path.name,
        label=None,
        duration_s=covered / data.fs,
        hr_bpm=bt.heart_rate_from_peaks(samples, lead.fs),
        reference=len(reference),
    )
    short = data.stats.short_beat_s
    stats.beats[PRIMARY] = len(seg)
    stats.short[PRIMARY] = bt.count_short(seg.span, data.fs, short)
    stats.stubs = len(seg) - len(table)
    tolerance = int(round(data.stats.match_tolerance_s * data.fs))
    for name, refractory in (("rule_refractory", True), ("rule_no_refractory", False)):
        det = bt.segment(signal, params, detector=bt.make_detector(data, refractory))
        stats.beats[name] = len(det)
        stats.short[name] = bt.count_short(det.span, data.fs, short)
        stats.detected[name] = len(det.peak)
        stats.hits[name] = bt.match_peaks(det.peak, reference, tolerance)
    return RecordBeats(
        source=SOURCE,
        record=path.name,
        patient=path.name,
        beats=table.beats,
        labels=labels[table.peak_id],
        stats=stats,
        context=context.iloc[table.peak_id].reset_index(drop=True),
    )


def list_records(cfg: Config, folder: Path) -> list[str]:
    """The records to read: the listed ones, capped by ``max_records``."""
    return cap(read_records_file(folder, "*.hea"), cfg.data.max_records)


def iter_records(cfg: Config, folder: Path, report: SourceReport) -> Iterator[RecordBeats]:
    """Yield the beats of every MIT-BIH record in ``folder``.

    Args:
        cfg: configuration.
        folder: the ``mitdb`` folder.
        report: filled with what was read and left out.

    Yields:
        One :class:`RecordBeats` per record (records without beats included; the caller
        skips them).
    """
    names = read_records_file(folder, "*.hea")
    report.listed = len(names)
    chosen = list_records(cfg, folder)
    capped = len(names) - len(chosen)
    if capped:
        report.excluded["max_records"] += capped
    for name in chosen:
        yield record_beats(cfg, folder / name, report)
