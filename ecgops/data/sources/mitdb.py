"""MIT-BIH Arrhythmia Database (``mitdb/NNN.{hea,dat,atr}``) to labelled beats.

Lead MLII picked by name (``data.mitbih.lead``; 102 and 104 have none and use
``fallback_channel``, logged); R-peaks and labels from the reference annotations, mapped to the
AAMI classes of ``data.mitbih.beat_symbols`` (N, S, V, F, Q in that label order); other symbols
are not rows of the table. One patient per record (``patient = record``; note that 201 and
202 come from the same subject in the database, so a split by record is inter-record, not
strictly inter-patient). Every row keeps its R-peak position (``sample`` at the record's own
rate, ``time_s``) and its RR context (``ecgops.data.rhythm``), computed on ALL the record's
beats (``data.mitbih.rr_symbols`` plus the classified ones), not only the classified rows.

The same code reads any other beat-annotated WFDB database named in
``data.arrhythmia_sources`` (:func:`source_settings`): its sampling rate comes from each
header, its lead is the first of the configured names the record has (case-insensitive), else
the fallback channel, and the lead used is logged for every record. Its record ids are
``<source>/<record>`` (:func:`record_id`) so they never clash with MIT-BIH's ``100`` ..
``234`` (which the DS1/DS2 lists and the gate set name); ``patient`` = record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import ArrhythmiaSourceConfig, Config, DataConfig
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
    cfg: Config,
    path: Path,
    ann: wfdb_io.Annotations,
    fs: float,
    annotator: str | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Classified beats of a record with their position and RR context.

    Args:
        cfg: configuration (``data.mitbih``, ``data.rhythm``).
        path: record path (named in errors).
        ann: its annotations.
        fs: the record's sampling rate.
        annotator: the annotation file's extension, named in errors (default
            ``data.mitbih.annotator``).

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
        ext = annotator or mit.annotator
        raise DataError(path.with_name(f"{path.name}.{ext}"), str(exc)) from exc
    context = pd.DataFrame({"sample": samples.astype(np.int64), "time_s": samples / fs})
    context[CONTEXT_COLUMNS] = rr.to_numpy()[position]
    return samples, labels, context


def source_settings(cfg: Config, source: str = SOURCE) -> ArrhythmiaSourceConfig:
    """Lead names, fallback channel and annotator of an arrhythmia source.

    Args:
        cfg: configuration (``data.mitbih`` for ``mitdb``, else
            ``data.arrhythmia_sources[source]``).
        source: source name.

    Returns:
        The source's settings (``mitdb``'s built from ``data.mitbih``).

    Raises:
        DataError: an unknown source name.
    """
    if source == SOURCE:
        mit = cfg.data.mitbih
        return ArrhythmiaSourceConfig(
            leads=[mit.lead], fallback_channel=mit.fallback_channel, annotator=mit.annotator
        )
    if source not in cfg.data.arrhythmia_sources:
        known = ", ".join([SOURCE, *cfg.data.arrhythmia_sources])
        raise DataError(None, f"unknown arrhythmia source {source!r} (configured: {known})")
    return cfg.data.arrhythmia_sources[source]


def record_id(source: str, name: str) -> str:
    """Record id in the beat table: MIT-BIH's own (``100``), else ``<source>/<name>``."""
    return name if source == SOURCE else f"{source}/{name}"


def preferred_lead(path: Path, leads: list[str]) -> str:
    """The first of ``leads`` that the record's header has (case-insensitive), else ``leads[0]``.

    Args:
        path: record path without extension.
        leads: signal names in order of preference.

    Returns:
        A lead name to read (absent from the record only when none of ``leads`` is there).
    """
    names = {str(n).strip().lower() for n in (wfdb_io.read_header(path).sig_name or [])}
    return next((lead for lead in leads if lead.strip().lower() in names), leads[0])


def read_source_lead(
    path: Path, settings: ArrhythmiaSourceConfig, report: SourceReport | None = None
) -> wfdb_io.Lead:
    """Read a record's configured lead (else its fallback channel), logged and reported.

    Args:
        path: record path without extension.
        settings: the source's leads and fallback channel.
        report: where the lead used (and a fallback) is noted (optional).

    Returns:
        The lead at the record's own rate (from its header).

    Raises:
        DataError: unreadable record, or none of the leads and no usable fallback.
    """
    lead = wfdb_io.read_lead(path, preferred_lead(path, settings.leads), settings.fallback_channel)
    log.info("%s: lead %s (channel %d) at %g Hz", path, lead.name, lead.channel, lead.fs)
    if report is not None:
        report.leads[lead.name] += 1
        if lead.name.strip().lower() not in {x.strip().lower() for x in settings.leads}:
            report.fallback_lead[path.name] = lead.name
    return lead


def record_beats(
    cfg: Config, path: Path, report: SourceReport | None = None, source: str = SOURCE
) -> RecordBeats:
    """Beats, labels and peak statistics of one record of an arrhythmia source.

    Args:
        cfg: configuration (``data`` section).
        path: record path without extension.
        report: where the lead used and a fallback lead are noted (optional).
        source: ``mitdb`` or a name of ``data.arrhythmia_sources``.

    Returns:
        The record's :class:`RecordBeats` (possibly with no beats); ``sample`` of its context
        is at the record's own rate.

    Raises:
        DataError: the record or its annotations cannot be read, or the annotations are at
            another sampling rate than the signal.
    """
    data: DataConfig = cfg.data
    settings = source_settings(cfg, source)
    lead = read_source_lead(path, settings, report)
    ann = wfdb_io.read_annotations(path, settings.annotator)
    if np.isfinite(ann.fs) and not np.isclose(ann.fs, lead.fs):
        raise DataError(
            path.with_name(f"{path.name}.{settings.annotator}"),
            f"annotations at {ann.fs:g} Hz but the signal is at {lead.fs:g} Hz",
        )
    samples, labels, context = beat_context(cfg, path, ann, lead.fs, settings.annotator)
    peaks = wfdb_io.to_rate(samples, lead.fs, data.fs)
    signal = wfdb_io.resample(lead.signal, lead.fs, data.fs)
    params = bt.SegmentParams.from_config(data)
    seg = bt.segment(signal, params, peaks=peaks)
    table = bt.drop_stubs(seg, params.min_span)

    n_windows = seg.n_windows
    covered = n_windows * params.window_len
    reference = peaks[peaks < covered]
    rid = record_id(source, path.name)
    stats = bt.RecordPeakStats(
        source=source,
        record=rid,
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
        source=source,
        record=rid,
        patient=rid,
        beats=table.beats,
        labels=labels[table.peak_id],
        stats=stats,
        context=context.iloc[table.peak_id].reset_index(drop=True),
    )


def list_records(cfg: Config, folder: Path) -> list[str]:
    """The records to read: the listed ones, capped by ``max_records``."""
    return cap(read_records_file(folder, "*.hea"), cfg.data.max_records)


def iter_records(cfg: Config, folder: Path, report: SourceReport) -> Iterator[RecordBeats]:
    """Yield the beats of every record of an arrhythmia source's folder.

    Args:
        cfg: configuration.
        folder: the source's folder (``mitdb`` or another database's).
        report: filled with what was read and left out; its ``source`` names the source
            (``mitdb`` or a name of ``data.arrhythmia_sources``).

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
        yield record_beats(cfg, folder / name, report, report.source)
