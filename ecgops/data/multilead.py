"""Multi-lead PTB-family beats: ``data/processed/ptb12.parquet`` beside the study's ``ptb``.

A beat is the same window in every lead of ``multilead.leads`` (the 12 standard leads I, II,
III, aVR, aVL, aVF, V1..V6, matched by signal name, case-insensitively, and stored in that
order whatever the record's channel order: the PTB Diagnostic layout has ``avl`` before
``avr`` and three Frank leads, which are not used). Per record:

1. every lead is resampled to ``data.fs`` (125 Hz) with :func:`ecgops.data.wfdb_io.resample`;
2. one set of R-peaks per record from :func:`ecgops.data.rpeaks.detect_record_peaks`
   (``rpeaks.method``, placed on ``multilead.peak_lead``), shared by every lead;
3. each lead is cut by the study's :func:`ecgops.data.beats.segment` with those peaks: min-max
   normalised within each 10 s window *per lead*, beats of ``1.2 x`` the window's median RR,
   187 samples, zero padding at the end; a beat is kept only when every lead gave it (a lead
   flat in a window gives none there; counted in the summary), then stubs are dropped.

Layout (wide, one row per beat, so it validates, splits and slices like the single-lead
table): ``patient, record, beat, label, source, sample, time_s`` then ``<lead>_x0 ..
<lead>_x186`` for each lead in order (float32 in [0, 1]). ``sample`` is the beat's R-peak as a
sample index at ``data.fs`` into the resampled record (the same for every lead), ``time_s`` the
same in seconds. :func:`lead_tensor` gives the ``(n, n_leads, 187)`` array for models.

Records and labels come from the single-lead sources (:mod:`ecgops.data.sources.ptbxl`,
:mod:`ecgops.data.sources.ptbdb`) and the folders of ``data.ptb_sources`` /
``data.raw_folders``, so a user's own PTB-XL or PTB Diagnostic folder in those layouts is
picked up by configuration alone. A record without one of the leads raises a
:class:`MissingLeadsError` naming the record and the leads, or is skipped and listed
(``multilead.on_missing_lead: skip``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import rpeaks as rp
from ecgops.data import wfdb_io
from ecgops.data.build import class_counts, source_folder, summary_path, table_path
from ecgops.data.multilead_schema import BASE_TASK, META_COLUMNS, TASK, lead_columns, lead_tensor
from ecgops.data.sources import SourceReport, cap, ptbdb, ptbxl, read_records_file
from ecgops.data.validation_multilead import validate_multilead
from ecgops.errors import DataError
from ecgops.io import write_json, write_parquet

log = logging.getLogger(__name__)

__all__ = ["BASE_TASK", "META_COLUMNS", "TASK", "lead_columns", "lead_tensor"]


class MissingLeadsError(DataError):
    """A record lacks leads that the multi-lead table (or a model) needs."""

    def __init__(self, record: str | Path, missing: list[str], available: list[str]) -> None:
        self.missing = list(missing)
        self.available = list(available)
        super().__init__(
            record,
            f"record lacks lead(s) {', '.join(missing)} (it has: {', '.join(available)})",
        )


@dataclass(frozen=True)
class RecordLeads:
    """Several leads of one record in mV at the record's rate.

    Attributes:
        record: the record path without extension.
        leads: the wanted lead names, in table order.
        signal_names: the same leads as the header spells them.
        fs: sampling rate (Hz).
        signals: float64 array ``(n_leads, n_samples)``.
    """

    record: Path
    leads: list[str]
    signal_names: list[str]
    fs: float
    signals: np.ndarray


@dataclass(frozen=True)
class LeadBeats:
    """Beats of one record cut in every lead at shared R-peaks.

    Attributes:
        beats: float32 ``(n, n_leads, beat_len)``.
        peak: R-peak of each beat (sample index at ``data.fs``).
        span: samples of signal before the padding (the same in every lead).
        n_windows: windows looked at.
        flat_dropped: beats left out because some lead was flat in their window.
        method: the R-peak method that gave the peaks.
        n_peaks: R-peaks detected.
    """

    beats: np.ndarray
    peak: np.ndarray
    span: np.ndarray
    n_windows: int
    flat_dropped: int
    method: str
    n_peaks: int


@dataclass(frozen=True)
class RecordRef:
    """A labelled record to read: source, id, path, patient, label."""

    source: str
    record: str
    path: Path
    patient: str
    label: int


def match_leads(signal_names: list[str], leads: list[str]) -> tuple[list[int], list[str]]:
    """Channel of each wanted lead by name (case-insensitive), and the leads not found.

    Args:
        signal_names: the header's signal names.
        leads: wanted leads in table order.

    Returns:
        ``(channels, missing)``: channels of the found leads in ``leads`` order, and the
        names of the missing ones.
    """
    index = {name.strip().lower(): i for i, name in enumerate(signal_names)}
    channels, missing = [], []
    for lead in leads:
        i = index.get(lead.strip().lower())
        if i is None:
            missing.append(lead)
        else:
            channels.append(i)
    return channels, missing


def read_leads(record: str | Path, leads: list[str]) -> RecordLeads:
    """Read the wanted leads of a WFDB record in physical units, in the wanted order.

    Args:
        record: the record path without extension.
        leads: lead names (case-insensitive).

    Returns:
        The :class:`RecordLeads`.

    Raises:
        MissingLeadsError: the record lacks some of the leads (all of them are named).
        DataError: missing, empty or unreadable header or signal file, NaN samples.
    """
    import wfdb

    record = Path(record)
    header = wfdb_io.read_header(record)
    names = list(header.sig_name or [])
    channels, missing = match_leads(names, leads)
    if missing:
        raise MissingLeadsError(record, missing, names)
    dat = record.with_name(header.file_name[channels[0]])
    if not dat.is_file() or dat.stat().st_size == 0:
        raise DataError(dat, "WFDB signal file missing or empty")
    try:
        rec = wfdb.rdrecord(str(record), physical=True)
    except Exception as exc:  # wfdb surfaces short files as reshape/broadcast errors
        raise DataError(dat, f"unreadable or truncated signal file: {exc}") from exc
    signals = np.asarray(rec.p_signal, dtype=np.float64)[:, channels].T
    expected = int(header.sig_len or 0)
    if expected and signals.shape[1] < expected:
        raise DataError(dat, f"truncated: {signals.shape[1]} of {expected} samples")
    if not np.isfinite(signals).all():
        bad = [
            names[c] for c, row in zip(channels, signals, strict=True) if not np.isfinite(row).all()
        ]
        raise DataError(dat, f"missing (NaN) samples in lead(s) {', '.join(bad)}")
    return RecordLeads(record, list(leads), [names[c] for c in channels], float(header.fs), signals)


def _peak_rows(leads: list[str], cfg: Config) -> tuple[list[int], int]:
    """Rows of ``leads`` that feed the R-peak detector, and the peak lead's place among them."""
    lower = [lead.lower() for lead in leads]
    peak = cfg.multilead.peak_lead.lower()
    if peak not in lower:
        raise ValueError(f"multilead.peak_lead {cfg.multilead.peak_lead!r} is not in {leads}")
    if cfg.rpeaks.method != "xqrs_vote":
        return [lower.index(peak)], 0
    rows = [lower.index(v.lower()) for v in cfg.rpeaks.vote_leads if v.lower() in lower]
    if lower.index(peak) not in rows:
        rows.append(lower.index(peak))
    return rows, rows.index(lower.index(peak))


def cut_leads(
    signals: np.ndarray, peaks: np.ndarray, cfg: Config
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Cut every lead (already at ``data.fs``) at the same R-peaks, per-lead normalised.

    Args:
        signals: ``(n_leads, n_samples)`` at ``data.fs``.
        peaks: R-peaks at ``data.fs``, ascending.
        cfg: configuration (``data``: the study's segmentation).

    Returns:
        ``(beats (n, n_leads, beat_len), peak, span, n_windows, flat_dropped)`` with stubs
        dropped and only beats that every lead gave.
    """
    params = bt.SegmentParams.from_config(cfg.data)
    segs = [bt.segment(lead, params, peaks=peaks) for lead in signals]
    common = segs[0].peak
    for seg in segs[1:]:
        common = np.intersect1d(common, seg.peak)
    flat_dropped = max(len(s) for s in segs) - len(common)
    beats = np.stack([s.beats[np.isin(s.peak, common)] for s in segs], axis=1)
    span = segs[0].span[np.isin(segs[0].peak, common)]
    keep = span >= params.min_span
    return beats[keep], common[keep], span[keep], segs[0].n_windows, flat_dropped


def record_lead_beats(leads: RecordLeads, cfg: Config) -> LeadBeats:
    """The multi-lead beats of one record (shared R-peaks, per-lead normalisation).

    Args:
        leads: the record's leads (:func:`read_leads`).
        cfg: configuration (``data``, ``rpeaks``, ``multilead``).

    Returns:
        The :class:`LeadBeats`.
    """
    data = cfg.data
    resampled = np.stack([wfdb_io.resample(x, leads.fs, data.fs) for x in leads.signals])
    rows, peak_index = _peak_rows(leads.leads, cfg)
    found = rp.detect_record_peaks(leads.signals[rows], leads.fs, cfg.rpeaks, data, peak_index)
    beats, peak, span, n_windows, flat = cut_leads(resampled, found.peaks, cfg)
    return LeadBeats(beats, peak, span, n_windows, flat, found.method, len(found.peaks))


def ptbxl_refs(cfg: Config, folder: Path, report: SourceReport) -> list[RecordRef]:
    """The labelled PTB-XL records outside the holdout folds (as the single-lead ``ptb``)."""
    xl = cfg.data.ptbxl
    meta = ptbxl.label_records(cfg, folder)
    report.listed = len(meta)
    holdout = meta["strat_fold"].isin(xl.holdout_folds)
    unlabelled = ~holdout & meta["label"].isna()
    report.excluded["holdout_fold"] += int(holdout.sum())
    report.excluded["other_diagnosis"] += int(unlabelled.sum())
    chosen = meta[~holdout & ~unlabelled]
    capped = cap(list(chosen.index), cfg.data.max_records)
    if len(capped) < len(chosen):
        report.excluded["max_records"] += len(chosen) - len(capped)
    refs = []
    for ecg_id in capped:
        row = chosen.loc[ecg_id]
        path = folder / str(row[xl.filename_column])
        patient = ptbxl.patient_id(row["patient_id"])
        refs.append(RecordRef(ptbxl.SOURCE, path.name, path, patient, int(row["label"])))
    return refs


def ptbdb_refs(cfg: Config, folder: Path, report: SourceReport) -> list[RecordRef]:
    """The MI and healthy-control records of a PTB Diagnostic folder (as the single-lead)."""
    db = cfg.data.ptbdb
    names = read_records_file(folder, "patient*/*.hea")
    report.listed = len(names)
    chosen = []
    for name in names:
        header = wfdb_io.read_header(folder / name)
        reason = ptbdb.admission_reason(list(header.comments or []))
        if reason is None:
            hea = folder / f"{name}.hea"
            raise DataError(hea, "no 'Reason for admission' header comment")
        label = ptbdb.reason_label(reason, db.mi_reason, db.healthy_reason)
        if label is None:
            report.excluded["other_diagnosis"] += 1
            continue
        patient = f"{ptbdb.SOURCE}-{Path(name).parts[0]}"
        chosen.append(RecordRef(ptbdb.SOURCE, name, folder / name, patient, label))
    capped = cap(chosen, cfg.data.max_records)
    if len(capped) < len(chosen):
        report.excluded["max_records"] += len(chosen) - len(capped)
    return capped


REFS = {ptbxl.SOURCE: ptbxl_refs, ptbdb.SOURCE: ptbdb_refs}


def beats_frame(refs: list[RecordRef], cut: list[LeadBeats], cfg: Config) -> pd.DataFrame:
    """Assemble the multi-lead table (layout in the module docstring)."""
    n = [len(c.peak) for c in cut]
    leads, beat_len = cfg.multilead.leads, cfg.data.beat_len
    peak = np.concatenate([c.peak for c in cut]).astype(np.int64)
    meta = pd.DataFrame(
        {
            "patient": np.repeat([r.patient for r in refs], n).astype(str),
            "record": np.repeat([r.record for r in refs], n).astype(str),
            "beat": np.concatenate([np.arange(k, dtype=np.int64) for k in n]),
            "label": np.repeat([r.label for r in refs], n).astype(np.int64),
            "source": np.repeat([r.source for r in refs], n).astype(str),
            "sample": peak,
            "time_s": peak / float(cfg.data.fs),
        }
    )
    x = np.concatenate([c.beats for c in cut]).reshape(len(meta), len(leads) * beat_len)
    signals = pd.DataFrame(x.astype(np.float32), columns=lead_columns(leads, beat_len))
    return pd.concat([meta, signals], axis=1)


def _read_cut(ref: RecordRef, cfg: Config, skipped: dict[str, list[str]]) -> LeadBeats | None:
    """Read and cut one record; a record missing leads fails or is skipped (logged)."""
    try:
        leads = read_leads(ref.path, cfg.multilead.leads)
    except MissingLeadsError as exc:
        if cfg.multilead.on_missing_lead == "fail":
            raise
        log.warning("%s", exc)
        skipped[f"{ref.source}/{ref.record}"] = exc.missing
        return None
    return record_lead_beats(leads, cfg)


def collect_multilead(cfg: Config, raw_dir: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """Read every present PTB-family source and cut its multi-lead beats (nothing written).

    Args:
        cfg: configuration.
        raw_dir: raw directory (default ``cfg.path("raw")``).

    Returns:
        ``(table, summary)``.

    Raises:
        MissingLeadsError: a record lacks a lead and ``multilead.on_missing_lead`` is ``fail``.
        DataError: no source folder, an unreadable record, or no beats at all.
    """
    started = time.perf_counter()
    raw_dir = raw_dir or cfg.path("raw")
    sources = [s for s in cfg.data.ptb_sources if source_folder(cfg, s, raw_dir).is_dir()]
    if not sources:
        raise DataError(raw_dir, "no PTB-family source folder; run `ecgops data import-raw`")
    refs, cut, reports = [], [], {}
    skipped: dict[str, list[str]] = {}
    methods: dict[str, int] = {}
    flat = 0
    seen: dict[str, str] = {}
    for source in sources:
        folder = source_folder(cfg, source, raw_dir)
        report = reports[source] = SourceReport(source=source, folder=folder)
        for ref in REFS[source](cfg, folder, report):
            got = _read_cut(ref, cfg, skipped)
            if got is None:
                continue
            methods[got.method] = methods.get(got.method, 0) + 1
            flat += got.flat_dropped
            digest = hashlib.sha256(np.ascontiguousarray(got.beats).tobytes()).hexdigest()
            if not len(got.peak):
                log.warning("%s/%s: no usable beat (%d R-peaks)", source, ref.record, got.n_peaks)
                report.no_beats.append(ref.record)
                continue
            if digest in seen:
                log.warning("%s/%s: same signal as %s, skipped", source, ref.record, seen[digest])
                report.duplicates[ref.record] = seen[digest]
                continue
            seen[digest] = f"{source}/{ref.record}"
            report.used += 1
            refs.append(ref)
            cut.append(got)
    if not refs:
        raise DataError(raw_dir, f"no multi-lead beats from {', '.join(sources)}")
    df = beats_frame(refs, cut, cfg)
    summary = summarise(df, cfg, reports, skipped, methods, flat)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return df, summary


def summarise(
    df: pd.DataFrame,
    cfg: Config,
    reports: dict[str, SourceReport],
    skipped: dict[str, list[str]],
    methods: dict[str, int],
    flat_dropped: int,
) -> dict:
    """The multi-lead build summary: counts, exclusions, detector use, settings."""
    names = cfg.class_names(BASE_TASK)
    per_record = df.groupby(["source", "record"]).size()
    per_source = {}
    for source, report in reports.items():
        part = df[df["source"] == source]
        per_source[source] = {
            **report.as_dict(),
            "beats": len(part),
            "patients": int(part["patient"].nunique()),
            "per_class": class_counts(part["label"], names),
        }
    return {
        "task": TASK,
        "leads": list(cfg.multilead.leads),
        "beats": len(df),
        "patients": int(df["patient"].nunique()),
        "records": int(len(per_record)),
        "per_class": class_counts(df["label"], names),
        "per_source": per_source,
        "skipped_missing_leads": skipped,
        "rpeak_method_used": methods,
        "beats_dropped_flat_lead": int(flat_dropped),
        "beats_per_record": {
            "min": int(per_record.min()),
            "median": float(per_record.median()),
            "max": int(per_record.max()),
        },
        "settings": {
            "multilead": cfg.multilead.model_dump(),
            "rpeaks": cfg.rpeaks.model_dump(),
            "fs": cfg.data.fs,
            "window_s": cfg.data.window_s,
            "beat_len": cfg.data.beat_len,
            "period_factor": cfg.data.period_factor,
            "min_beat_s": cfg.data.min_beat_s,
            "max_records": cfg.data.max_records,
        },
    }


def build_multilead(cfg: Config) -> Path:
    """Build, validate and write ``<processed>/ptb12.parquet`` and its summary atomically.

    Args:
        cfg: configuration (reads the raw copy under ``cfg.path("raw")``).

    Returns:
        The parquet path.

    Raises:
        DataError: missing or unreadable records, a record missing a lead (``fail``).
        ValidationFailed: the table failed its suite (nothing is written).
    """
    df, summary = collect_multilead(cfg)
    target = table_path(cfg, TASK)
    report_dir = cfg.path("outputs") / "validation" / TASK
    validate_multilead(df, cfg, f"{target} (from {cfg.path('raw')})", report_dir=report_dir)
    write_parquet(df, target)
    write_json(summary, summary_path(cfg, TASK))
    return target
