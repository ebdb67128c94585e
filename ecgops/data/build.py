"""Raw records -> one validated beat table per task (``data/processed/{task}.parquet``).

``mitbih`` comes from the arrhythmia sources of ``data.mitbih_sources`` that are present
(``mitdb`` and any beat-annotated WFDB database configured in ``data.arrhythmia_sources``, read
by the same code: :mod:`ecgops.data.sources.mitdb`); ``ptb`` from the PTB-family sources of
``data.ptb_sources`` that are present (PTB-XL and/or PTB Diagnostic). Next to each table,
``{task}.summary.json`` holds beats per class and per source, what was left out, and the
R-peak statistics. The table is validated (Great Expectations) before it is written
atomically: a failed build leaves the previous table and summary untouched. A record whose
beats repeat an earlier record's exactly is left out and listed (PTB-XL holds a few
byte-identical 500 Hz recordings, e.g. ecg_id 145 and 463 of two different patients, which
would leak across a patient split).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from ecgops import paths
from ecgops.config import TASKS, Config
from ecgops.data.beats import RecordPeakStats, summarise_peak_stats
from ecgops.data.sources import RecordBeats, SourceReport, mitdb, ptbdb, ptbxl
from ecgops.errors import DataError
from ecgops.io import write_json, write_parquet
from ecgops.schema import CONTEXT_COLUMNS, POSITION_COLUMNS

log = logging.getLogger(__name__)

SOURCES: dict[str, ModuleType] = {"mitdb": mitdb, "ptbxl": ptbxl, "ptbdb": ptbdb}
PRIMARY_VARIANT = {"mitbih": mitdb.PRIMARY, "ptb": ptbxl.PRIMARY}
MITBIH_OWN_SOURCES = (mitdb.SOURCE, "kaggle")  # MIT-BIH's own rows: records or the Kaggle CSVs


def signal_columns(beat_len: int) -> list[str]:
    """``x0 .. x{beat_len-1}``."""
    return [f"x{i}" for i in range(beat_len)]


def table_path(cfg: Config, task: str) -> Path:
    """``<processed>/{task}.parquet`` (:func:`ecgops.paths.beat_table`)."""
    return paths.beat_table(cfg, task)


def summary_path(cfg: Config, task: str) -> Path:
    """``<processed>/{task}.summary.json`` (:func:`ecgops.paths.beat_summary`)."""
    return paths.beat_summary(cfg, task)


def check_task(task: str) -> str:
    """Return ``task`` if known, else raise ValueError naming the choices."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def task_sources(cfg: Config, task: str) -> list[str]:
    """Source names that may feed a task (present or not)."""
    check_task(task)
    return list(cfg.data.mitbih_sources if task == "mitbih" else cfg.data.ptb_sources)


def source_module(cfg: Config, source: str) -> ModuleType:
    """The module that reads a source (a configured arrhythmia source: :mod:`mitdb`'s)."""
    if source in SOURCES:
        return SOURCES[source]
    if source in cfg.data.arrhythmia_sources:
        return mitdb
    raise ValueError(f"unknown source {source!r}; not in {', '.join(SOURCES)} nor configured")


def extra_source_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows of a MIT-BIH task table from arrhythmia sources other than MIT-BIH (or Kaggle).

    They follow ``splits.extra_sources`` in both schemes: ``exclude`` (``unused``), ``test``
    (a cross-database test part) or ``train`` (beat scheme: split with MIT-BIH's beats;
    patient scheme: training records beside DS1, grouped val carved from all of them).
    """
    if "source" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return ~np.isin(df["source"].astype(str).to_numpy(), MITBIH_OWN_SOURCES)


def source_folder(cfg: Config, source: str, raw_dir: Path | None = None) -> Path:
    """Folder of a source under the raw directory (``data.raw_folders``)."""
    return (raw_dir or cfg.path("raw")) / cfg.data.raw_folders[source]


def beats_frame(records: list[RecordBeats], beat_len: int) -> pd.DataFrame:
    """Assemble the beat table from per-record beats.

    Args:
        records: records with at least one beat.
        beat_len: samples per beat.

    Returns:
        Columns ``patient, record, beat, label, source, x0..`` (signals float32), one row per
        beat, in record order; ``beat`` is the beat's index within its record. When every
        record carries context (MIT-BIH), ``sample, time_s`` follow ``source`` and the
        ``schema.CONTEXT_COLUMNS`` follow the signals.

    Raises:
        ValueError: some records carry context and others do not.
    """
    n = [len(r.beats) for r in records]
    meta = pd.DataFrame(
        {
            "patient": np.repeat([r.patient for r in records], n).astype(str),
            "record": np.repeat([r.record for r in records], n).astype(str),
            "beat": np.concatenate([np.arange(k, dtype=np.int64) for k in n]),
            "label": np.concatenate([r.labels for r in records]).astype(np.int64),
            "source": np.repeat([r.source for r in records], n).astype(str),
        }
    )
    x = np.concatenate([r.beats for r in records]).astype(np.float32)
    signals = pd.DataFrame(x, columns=signal_columns(beat_len))
    with_context = [r.context is not None for r in records]
    if not any(with_context):
        return pd.concat([meta, signals], axis=1)
    if not all(with_context):
        raise ValueError("some records carry RR context and others do not")
    ctx = pd.concat([r.context for r in records], ignore_index=True)
    return pd.concat(
        [meta, ctx[POSITION_COLUMNS], signals, ctx[CONTEXT_COLUMNS].astype(np.float64)], axis=1
    )


def class_counts(labels: pd.Series, names: list[str]) -> dict[str, int]:
    """Rows per class name (every class listed, zeros included)."""
    counts = labels.value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(names)}


def collect(cfg: Config, task: str, raw_dir: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """Read every present source of a task and cut its beats (nothing is written).

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.
        raw_dir: raw directory (default ``cfg.path("raw")``).

    Returns:
        ``(table, summary)``.

    Raises:
        DataError: no source folder present, an unreadable record, or no beats at all.
    """
    started = time.perf_counter()
    raw_dir = raw_dir or cfg.path("raw")
    present = [s for s in task_sources(cfg, task) if source_folder(cfg, s, raw_dir).is_dir()]
    if not present:
        wanted = ", ".join(f"{cfg.data.raw_folders[s]}/" for s in task_sources(cfg, task))
        raise DataError(
            raw_dir, f"no source folder for task {task} ({wanted}); run `ecgops data import-raw`"
        )
    records: list[RecordBeats] = []
    stats: list[RecordPeakStats] = []
    reports: list[SourceReport] = []
    seen: dict[str, str] = {}
    for source in present:
        folder = source_folder(cfg, source, raw_dir)
        report = SourceReport(source=source, folder=folder)
        reports.append(report)
        for rec in source_module(cfg, source).iter_records(cfg, folder, report):
            digest = hashlib.sha256(np.ascontiguousarray(rec.beats).tobytes()).hexdigest()
            if len(rec.beats) and digest in seen:
                log.warning("%s/%s: same signal as %s, skipped", source, rec.record, seen[digest])
                report.duplicates[rec.record] = seen[digest]
                continue
            stats.append(rec.stats)
            if not len(rec.beats):
                log.warning("%s/%s: no beats, skipped", source, rec.record)
                report.no_beats.append(rec.record)
                continue
            seen[digest] = f"{source}/{rec.record}"
            report.used += 1
            records.append(rec)
        log.info("%s: %d records used from %s", source, report.used, folder)
    if not records:
        raise DataError(raw_dir, f"no beats extracted for task {task} from {', '.join(present)}")
    df = beats_frame(records, cfg.data.beat_len)
    summary = summarise(df, task, cfg, reports, stats)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("%s: %d beats %s", task, len(df), summary["per_class"])
    return df, summary


def summarise(
    df: pd.DataFrame,
    task: str,
    cfg: Config,
    reports: list[SourceReport],
    stats: list[RecordPeakStats],
) -> dict:
    """The build summary: counts per class and source, exclusions, peak statistics."""
    names = cfg.class_names(task)
    per_record = df.groupby(["source", "record"]).size()
    per_source = {}
    for report in reports:
        part = df[df["source"] == report.source]
        per_source[report.source] = {
            **report.as_dict(),
            "beats": len(part),
            "patients": int(part["patient"].nunique()),
            "per_class": class_counts(part["label"], names),
        }
    d = cfg.data
    return {
        "task": task,
        "beats": len(df),
        "patients": int(df["patient"].nunique()),
        "records": int(len(per_record)),
        "per_class": class_counts(df["label"], names),
        "per_source": per_source,
        "beats_per_record": {
            "min": int(per_record.min()),
            "median": float(per_record.median()),
            "max": int(per_record.max()),
        },
        "peak_stats": summarise_peak_stats(stats, d.stats.hr_bins, PRIMARY_VARIANT[task]),
        "settings": {
            "fs": d.fs,
            "window_s": d.window_s,
            "beat_len": d.beat_len,
            "period_factor": d.period_factor,
            "peak_threshold": d.peak_threshold,
            "refractory_s": d.refractory_s,
            "min_beats_per_window": d.min_beats_per_window,
            "partial_window": d.partial_window,
            "last_beat": d.last_beat,
            "min_beat_s": d.min_beat_s,
            "short_beat_s": d.stats.short_beat_s,
            "max_records": d.max_records,
            "rhythm": d.rhythm.model_dump(mode="json") if task == "mitbih" else None,
            "sources": task_sources(cfg, task),
            "arrhythmia_sources": {
                k: v.model_dump(mode="json") for k, v in d.arrhythmia_sources.items()
            }
            if task == "mitbih"
            else None,
        },
    }


def write_table(
    cfg: Config, task: str, df: pd.DataFrame, summary: dict, origin: str | Path
) -> Path:
    """Validate a beat table, then write it and its summary atomically.

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.
        df: the beat table.
        summary: its summary (written as ``{task}.summary.json``).
        origin: where the table came from, named in validation messages.

    Returns:
        The parquet path.

    Raises:
        ValidationFailed: the table failed its expectation suite (nothing is written).
    """
    from ecgops.data.validation import validate_beats

    target = table_path(cfg, task)
    report_dir = cfg.path("outputs") / "validation" / task
    validate_beats(df, task, cfg, f"{target} (from {origin})", report_dir=report_dir)
    return save_table(cfg, task, df, summary)


def save_table(cfg: Config, task: str, df: pd.DataFrame, summary: dict) -> Path:
    """Write a (validated) table and its summary atomically; returns the parquet path."""
    target = table_path(cfg, task)
    write_parquet(df, target)
    write_json(summary, summary_path(cfg, task))
    return target


def build_task(cfg: Config, task: str) -> Path:
    """Build, validate and write ``<processed>/{task}.parquet`` and its summary.

    Args:
        cfg: configuration (reads the raw copy under ``cfg.path("raw")``).
        task: ``mitbih`` or ``ptb``.

    Returns:
        The parquet path.

    Raises:
        DataError: missing or unreadable raw records.
        ValidationFailed: the built table failed validation (nothing is written).
    """
    df, summary = collect(cfg, task)
    return write_table(cfg, task, df, summary, cfg.path("raw"))


def build_all(cfg: Config, tasks: list[str] | None = None) -> dict[str, Path]:
    """Build several tasks (default: all); stops at the first failure."""
    return {task: build_task(cfg, task) for task in (tasks or list(TASKS))}
