"""PTB-XL (``ptbxl/records500/...``, ``ptbxl_database.csv``) to healthy-vs-MI beats.

Labels (data README): myocardial infarction (1) when any diagnostic SCP code of the record
has ``diagnostic_class`` MI; healthy (0) when the only diagnostic class is NORM; every other
record is excluded. Lead II at 500 Hz (``filename_hr``), R-peaks detected by the PTB rule of
:mod:`ecgops.data.beats`; patient id ``ptbxl-<patient_id>``; strat folds in
``data.ptbxl.holdout_folds`` are skipped (held back for acceptance tests).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.data.sources import RecordBeats, SourceReport, cap
from ecgops.errors import DataError

log = logging.getLogger(__name__)

SOURCE = "ptbxl"
DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
PRIMARY = "refractory"
HEALTHY, MI = 0, 1


def read_csv(path: Path, required: list[str], index_col: str | int | None = None) -> pd.DataFrame:
    """Read a metadata CSV with clear errors (missing, empty, unparseable, missing columns)."""
    if not path.is_file():
        raise DataError(path, "not found")
    try:
        df = pd.read_csv(path, index_col=index_col)
    except pd.errors.EmptyDataError as exc:
        raise DataError(path, "file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(path, f"not a readable CSV: {exc}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(path, f"missing columns: {', '.join(missing)}")
    return df


def diagnostic_classes(statements: pd.DataFrame) -> dict[str, str]:
    """SCP code -> diagnostic class, for the diagnostic statements only."""
    diag = statements[statements["diagnostic"] == 1]
    return {str(k): str(v) for k, v in diag["diagnostic_class"].dropna().items()}


def parse_scp_codes(value: str | dict) -> dict[str, float]:
    """The ``scp_codes`` cell (a Python dict literal) as a dict."""
    parsed = value if isinstance(value, dict) else ast.literal_eval(str(value))
    if not isinstance(parsed, dict):
        raise ValueError("not a dict")
    return parsed


def record_label(
    scp_codes: dict[str, float], classes: dict[str, str], mi_class: str, norm_class: str
) -> int | None:
    """Binary label of a PTB-XL record.

    Args:
        scp_codes: the record's SCP codes (likelihoods ignored, as the data README says).
        classes: diagnostic SCP code -> diagnostic class.
        mi_class: the MI class name (``MI``).
        norm_class: the normal class name (``NORM``).

    Returns:
        1 (MI) when any diagnostic code is MI, 0 when the only diagnostic class is NORM,
        None otherwise (excluded).
    """
    found = {classes[c] for c in scp_codes if c in classes}
    if mi_class in found:
        return MI
    if found == {norm_class}:
        return HEALTHY
    return None


def label_records(cfg: Config, folder: Path) -> pd.DataFrame:
    """The PTB-XL records with their binary label (None = excluded), ordered by ``ecg_id``.

    Args:
        cfg: configuration (``data.ptbxl``).
        folder: the ``ptbxl`` folder.

    Returns:
        A frame indexed by ``ecg_id`` with ``patient_id``, ``strat_fold``, the filename column
        and ``label`` (nullable Int64).

    Raises:
        DataError: a metadata CSV is missing, unreadable, or has a bad ``scp_codes`` cell.
    """
    xl = cfg.data.ptbxl
    db_path = folder / DATABASE
    db = read_csv(db_path, ["ecg_id", "patient_id", "scp_codes", "strat_fold", xl.filename_column])
    statements = read_csv(folder / STATEMENTS, ["diagnostic", "diagnostic_class"], index_col=0)
    classes = diagnostic_classes(statements)
    labels = []
    for ecg_id, codes in zip(db["ecg_id"], db["scp_codes"], strict=True):
        try:
            parsed = parse_scp_codes(codes)
        except (ValueError, SyntaxError) as exc:
            raise DataError(db_path, f"ecg_id {ecg_id}: bad scp_codes {codes!r}") from exc
        labels.append(record_label(parsed, classes, xl.mi_class, xl.norm_class))
    db["label"] = pd.array(labels, dtype="Int64")
    return db.set_index("ecg_id").sort_index()


def patient_id(value: object) -> str:
    """``ptbxl-<patient_id>`` (the CSV stores ids as floats, e.g. 15709.0)."""
    try:
        return f"{SOURCE}-{int(float(value))}"
    except (TypeError, ValueError):
        return f"{SOURCE}-{value}"


def record_beats(cfg: Config, path: Path, patient: str, label: int) -> RecordBeats:
    """Beats and peak statistics of one PTB-family record (lead from the caller's config).

    Args:
        cfg: configuration.
        path: record path without extension.
        patient: patient id.
        label: the record's binary label.

    Returns:
        The record's :class:`RecordBeats`.

    Raises:
        DataError: the record cannot be read.
    """
    return detected_beats(cfg, path, cfg.data.ptbxl.lead, SOURCE, path.name, patient, label)


def detected_beats(
    cfg: Config, path: Path, lead_name: str, source: str, record: str, patient: str, label: int
) -> RecordBeats:
    """Beats of a record whose R-peaks are detected (PTB-XL and PTB Diagnostic).

    The table's beats come from the rule with the refractory distance; the statistics also
    count what the paper's rule alone would give, and the independent heart rate.

    Args:
        cfg: configuration.
        path: record path without extension.
        lead_name: signal name of the lead (``II``, ``ii``).
        source: source name.
        record: record id.
        patient: patient id.
        label: the record's binary label.

    Returns:
        The record's :class:`RecordBeats`.

    Raises:
        DataError: the record cannot be read or has no such lead.
    """
    data = cfg.data
    lead = wfdb_io.read_lead(path, lead_name)
    signal = wfdb_io.resample(lead.signal, lead.fs, data.fs)
    params = bt.SegmentParams.from_config(data)
    seg = bt.segment(signal, params, detector=bt.make_detector(data, refractory=True))
    table = bt.drop_stubs(seg, params.min_span)
    hr = None
    if data.stats.hr_reference == "xqrs":
        hr = bt.reference_heart_rate(lead.signal, lead.fs)
    stats = bt.RecordPeakStats(
        source=source,
        record=record,
        label=cfg.class_names("ptb")[label],
        duration_s=seg.n_windows * params.window_len / data.fs,
        hr_bpm=hr,
    )
    short = data.stats.short_beat_s
    stats.beats[PRIMARY] = len(seg)
    stats.short[PRIMARY] = bt.count_short(seg.span, data.fs, short)
    stats.stubs = len(seg) - len(table)
    alt = bt.segment(signal, params, detector=bt.make_detector(data, refractory=False))
    stats.beats["no_refractory"] = len(alt)
    stats.short["no_refractory"] = bt.count_short(alt.span, data.fs, short)
    return RecordBeats(
        source=source,
        record=record,
        patient=patient,
        beats=table.beats,
        labels=np.full(len(table), label, dtype=np.int64),
        stats=stats,
    )


def iter_records(cfg: Config, folder: Path, report: SourceReport) -> Iterator[RecordBeats]:
    """Yield the beats of every labelled PTB-XL record outside the holdout folds.

    Args:
        cfg: configuration.
        folder: the ``ptbxl`` folder.
        report: filled with what was read and left out.

    Yields:
        One :class:`RecordBeats` per record.
    """
    xl = cfg.data.ptbxl
    meta = label_records(cfg, folder)
    report.listed = len(meta)
    holdout = meta["strat_fold"].isin(xl.holdout_folds)
    report.excluded["holdout_fold"] += int(holdout.sum())
    unlabelled = ~holdout & meta["label"].isna()
    report.excluded["other_diagnosis"] += int(unlabelled.sum())
    chosen = meta[~holdout & ~unlabelled]
    capped = cap(list(chosen.index), cfg.data.max_records)
    if len(capped) < len(chosen):
        report.excluded["max_records"] += len(chosen) - len(capped)
    for ecg_id in capped:
        row = chosen.loc[ecg_id]
        path = folder / str(row[xl.filename_column])
        yield record_beats(cfg, path, patient_id(row["patient_id"]), int(row["label"]))
