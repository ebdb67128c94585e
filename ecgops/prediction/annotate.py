"""Per-beat annotation of whole WFDB records (``ecgops annotate --task mitbih``).

For each record:

1. **Lead**: ``data.mitbih.lead`` by name (any case), else the first of
   ``annotate.lead_fallbacks`` the record has, else channel ``data.mitbih.fallback_channel``;
   the choice is always logged.
2. **R-peaks** at the record's own rate: the reference beat annotations
   (``data.mitbih.annotator``, beat symbols of ``data.mitbih.beat_symbols`` only) with
   ``--reference-peaks``, else a QRS detector of ``wfdb.processing`` (``annotate.detector``:
   ``xqrs`` or ``gqrs``), run in chunks with ``annotate.detector_overlap_s`` of context on each
   side; a peak belongs to the chunk it falls in, and peaks closer than ``data.refractory_s``
   (from neighbouring chunks) are kept once.
3. **Beats** exactly as training cut them (:mod:`ecgops.data.beats`, the Kachuee
   segmentation of :mod:`ecgops.data.sources.mitdb`): the lead resampled to ``data.fs``, 10 s
   windows, min-max normalised, beats from each R-peak, stubs dropped. The record streams in
   chunks of about ``annotate.chunk_s`` seconds made of whole windows, each read with
   ``annotate.resample_margin_s`` of signal on both sides and cut at a sample where the
   resampling phase is the whole record's, so the beats equal those of the whole record (a beat
   never reads across its window, so chunks need no other overlap) and memory stays bounded.
4. **Rhythm context** (when the model's metadata asks for it, :func:`context_columns`): with
   reference peaks exactly as the beat table computes it (``mitdb.beat_context``), with
   detected peaks ``ecgops.data.rhythm.rr_context`` over all of them; with the record's mean RR
   over all its beats (``ecgops.features.context.with_record_scale``); passed beside
   ``x0..x186``. The lead, chunking and R-peak code is in :mod:`ecgops.prediction.stream`.
5. **Output**: ``DIR/<record>.csv`` (``record, sample, time_s, pred, pred_name, p_0..p_k``;
   ``sample`` at the record's rate), ``DIR/<record>.<annotate.extension>`` (``wfdb.wrann``, the
   AAMI symbols N, S, V, F, Q) and ``DIR/annotate_summary.json`` (lead, R-peak source, counts,
   throughput per record). A record without beats gets a message, a CSV with its header only and
   no annotation file.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.errors import DataError
from ecgops.prediction.stream import (
    REFERENCE,
    LeadChoice,
    choose_lead,
    chunk_plan,
    detect_peaks,
    reference_peaks,
    resampled_chunk,
)

log = logging.getLogger(__name__)

ROW_META = ["record", "sample", "time_s"]
SUMMARY_FILE = "annotate_summary.json"
TIME_FORMAT = "{:.6f}"
"""``time_s`` to the microsecond (``float_format`` keeps 6 digits only for probabilities)."""


# ---- model -------------------------------------------------------------------------------------


@dataclass
class AnnotationModel:
    """A loaded beat classifier (``ecgops.registry.model.LoadedModel``) and its input needs."""

    uri: str
    loaded: Any
    class_names: list[str]
    context_columns: list[str]


def load_annotation_model(cfg: Config, task: str, model_uri: str | None) -> AnnotationModel:
    """Load the classifier (default: the task's context champion) and read its input needs.

    The one place that knows how models are loaded: repoint it when loading moves. Without
    ``model_uri`` the champion of ``ecgops-{task}-context`` (beats with their RR context, as
    records give them) is used; while that model has no champion, the morphology champion
    ``ecgops-{task}`` (logged).

    Args:
        cfg: configuration (tracking URI, trust check).
        task: ``mitbih``.
        model_uri: ``models:/...``, ``runs:/...`` or a folder inside the project; None = champion.

    Returns:
        The :class:`AnnotationModel`; ``context_columns`` is empty for morphology-only models.

    Raises:
        RegistryError: the model cannot be loaded or is not trusted.
    """
    from ecgops.registry.model import load_model, resolve_model_uri

    uri = resolve_model_uri(cfg, task=task, model=model_uri or default_model_uri(cfg, task))
    loaded = load_model(uri, cfg)
    return AnnotationModel(uri, loaded, list(loaded.class_names), context_columns(loaded.pyfunc))


def default_model_uri(cfg: Config, task: str) -> str | None:
    """The context champion's URI, or None (the morphology champion) while there is none."""
    from ecgops.registry.client import (
        CHAMPION,
        CONTEXT,
        alias_version,
        mlflow_client,
        registered_model_name,
    )

    name = registered_model_name(cfg, task, CONTEXT)
    try:
        found = alias_version(mlflow_client(cfg), name, CHAMPION) is not None
    except Exception as exc:  # noqa: BLE001 - an unreachable registry: the load reports it
        log.debug("no context champion (%s): %s", name, exc)
        found = False
    if found:
        return f"models:/{name}@{CHAMPION}"
    log.warning("%s has no champion yet: annotating with the morphology champion", name)
    return None


def context_columns(model: Any) -> list[str]:
    """Rhythm-context columns the model's metadata asks for (empty: morphology only)."""
    from ecgops.registry.pyfunc import METADATA_KEY

    info = (getattr(model.metadata, "metadata", None) or {}).get(METADATA_KEY, {})
    listed = info.get("context_columns")
    if listed:
        return [str(c) for c in listed]
    if info.get("needs_context") or "context" in str(info.get("input_layout", "")):
        from ecgops.schema import CONTEXT_COLUMNS

        return list(CONTEXT_COLUMNS)
    return []


def select_context(context: pd.DataFrame, columns: list[str], where: Path) -> pd.DataFrame:
    """The model's context columns, or a clear error naming the record.

    Raises:
        DataError: the model needs columns that the RR context does not have.
    """
    missing = [c for c in columns if c not in context.columns]
    if missing:
        raise DataError(where, f"the model needs context columns {missing} that are not computed")
    return context[columns].reset_index(drop=True)


def predict_beats(
    model: AnnotationModel, beats: np.ndarray, context: pd.DataFrame | None
) -> pd.DataFrame:
    """``pred, pred_name, p_0..p_k`` of beats (with their context columns when needed)."""
    from ecgops.registry.pyfunc import beat_frame, output_columns

    frame = beat_frame(beats)
    if context is not None:
        frame = pd.concat([frame, context.reset_index(drop=True)], axis=1)
    out = model.loaded.pyfunc.predict(frame)
    return out[output_columns(len(model.class_names))].reset_index(drop=True)


# ---- one record --------------------------------------------------------------------------------


def record_peaks(
    cfg: Config, path: Path, lead: LeadChoice, fs: float, n: int, use_reference: bool,
    columns: list[str], progress: bool,
) -> tuple[np.ndarray, pd.DataFrame | None, str]:  # fmt: skip
    """R-peaks at the record's rate, the model's context columns (None: not needed) and
    the peaks' source (``reference`` or the detector's name)."""
    if use_reference:
        peaks, context = reference_peaks(cfg, path, fs, bool(columns))
        source = REFERENCE
    else:
        peaks = detect_peaks(cfg, path, lead.channel, fs, n, progress)
        context, source = None, cfg.annotate.detector
        if columns:
            from ecgops.data.rhythm import rr_context

            context = rr_context(peaks, fs, cfg.data.rhythm)
    if context is not None:
        from ecgops.features.context import with_record_scale

        context = with_record_scale(context, records=None)  # the record's mean RR, all beats
    return peaks, None if context is None else select_context(context, columns, path), source


def annotate_record(
    cfg: Config, model: AnnotationModel, path: Path, out_dir: Path, use_reference: bool,
    progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Annotate one record: write its CSV and annotation file; return its summary.

    Raises:
        DataError: the record (or, with ``use_reference``, its annotations) is missing or bad.
    """
    from tqdm import tqdm

    from ecgops.io import atomic_path

    started = time.perf_counter()
    header = wfdb_io.read_header(path)
    hea = path.with_name(path.name + ".hea")
    lead = choose_lead([str(s) for s in (header.sig_name or [])], cfg, hea)
    fs, n = float(header.fs), int(header.sig_len or 0)
    log.info("%s: lead %s (channel %d, %s), %g Hz", path.name, lead.name, lead.channel,
             lead.how, fs)  # fmt: skip
    peaks, context, source = record_peaks(
        cfg, path, lead, fs, n, use_reference, model.context_columns, progress
    )
    plan, params = chunk_plan(cfg, fs, n), bt.SegmentParams.from_config(cfg.data)
    peaks_out = wfdb_io.to_rate(peaks, fs, plan.fs_out)
    columns = ROW_META + ["pred", "pred_name"] + [f"p_{j}" for j in range(len(model.class_names))]
    samples, symbols = [], []
    csv_path = out_dir / f"{path.name}.csv"
    bar = tqdm(total=len(peaks), unit="beat", desc=f"annotate {path.name}",
               disable=not progress or None, file=sys.stderr)  # fmt: skip
    with atomic_path(csv_path) as tmp, bar:
        pd.DataFrame(columns=columns).to_csv(tmp, index=False)
        for start, stop in plan.chunks():
            lo, hi = np.searchsorted(peaks_out, [start, stop])
            bar.update(int(hi - lo))
            if hi - lo < params.min_beats:
                continue
            signal = resampled_chunk(path, lead.channel, plan, start, stop)
            seg = bt.drop_stubs(bt.segment(signal, params, peaks=peaks_out[lo:hi] - start),
                                params.min_span)  # fmt: skip
            if not len(seg):
                continue
            ids = lo + seg.peak_id
            rows = predict_beats(model, seg.beats, None if context is None else context.iloc[ids])
            rows.insert(0, "time_s", [TIME_FORMAT.format(t) for t in peaks[ids] / fs])
            rows.insert(0, "sample", peaks[ids])
            rows.insert(0, "record", path.name)
            rows.to_csv(tmp, mode="a", header=False, index=False, float_format="%.6g")
            samples.append(peaks[ids])
            symbols.extend(rows["pred_name"].astype(str))
    seconds = time.perf_counter() - started
    summary = _record_summary(path, lead, fs, n, source, peaks, symbols, model, seconds)
    summary["csv"] = str(csv_path)
    if symbols:
        summary["annotation"] = write_annotation(cfg, path.name, np.concatenate(samples),
                                                 symbols, fs, out_dir)  # fmt: skip
    else:
        summary["note"] = no_beats_reason(cfg, peaks, source, n / fs)
        print(f"{path.name}: no beats to annotate: {summary['note']}", file=sys.stderr)
    return summary


def no_beats_reason(cfg: Config, peaks: np.ndarray, source: str, duration_s: float) -> str:
    """Why a record gave no beats, in words."""
    if duration_s < cfg.data.window_s:
        return f"the record ({duration_s:.1f} s) is shorter than one {cfg.data.window_s:g} s window"
    if not len(peaks):
        where = "no beat annotations" if source == REFERENCE else f"{source} found no QRS complex"
        return f"no R-peaks ({where})"
    return (
        f"{len(peaks)} R-peaks but no {cfg.data.window_s:g} s window with "
        f"{cfg.data.min_beats_per_window} or more of them and a non-flat signal"
    )


def write_annotation(
    cfg: Config, name: str, samples: np.ndarray, symbols: list[str], fs: float, out_dir: Path
) -> str:
    """Write ``out_dir/<name>.<annotate.extension>`` with ``wfdb.wrann``; return its path."""
    import wfdb

    wfdb.wrann(name, cfg.annotate.extension, np.asarray(samples, dtype=np.int64),
               symbol=list(symbols), fs=fs, write_dir=str(out_dir))  # fmt: skip
    return str(out_dir / f"{name}.{cfg.annotate.extension}")


def _record_summary(
    path: Path, lead: LeadChoice, fs: float, n: int, source: str, peaks: np.ndarray,
    symbols: list[str], model: AnnotationModel, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    counts = pd.Series(symbols, dtype=object).value_counts()
    return {
        "record": path.name,
        "path": str(path),
        "fs": fs,
        "duration_s": round(n / fs, 3) if fs else 0.0,
        "lead": lead.name,
        "channel": lead.channel,
        "lead_choice": lead.how,
        "peaks": source,
        "r_peaks": len(peaks),
        "beats": len(symbols),
        "counts": {c: int(counts.get(c, 0)) for c in model.class_names},
        "seconds": round(seconds, 3),
        "beats_per_s": round(len(symbols) / seconds, 1) if seconds > 0 else None,
    }


# ---- several records ---------------------------------------------------------------------------


def annotate_records(
    cfg: Config,
    task: str,
    records: list[str | Path],
    out_dir: str | Path,
    reference_peaks: bool = False,
    model_uri: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Annotate every beat of WFDB records (see the module docstring).

    Args:
        cfg: configuration.
        task: ``mitbih`` (the per-beat AAMI classes).
        records: record paths without extension; their names must differ.
        out_dir: where the CSVs, annotation files and ``annotate_summary.json`` go.
        reference_peaks: R-peaks from the reference annotations instead of the detector.
        model_uri: the classifier (default ``models:/ecgops-mitbih-context@champion``, else
            ``models:/ecgops-mitbih@champion``).
        progress: tqdm progress bars on stderr (when it is a terminal).

    Returns:
        The summary: model, per-record entries, total beats and throughput.

    Raises:
        DataError: no record, duplicate names, or a missing/bad record.
        RegistryError: the model cannot be loaded.
    """
    if task != "mitbih":
        raise DataError(None, f"annotate labels beats of the mitbih task, not {task!r}")
    paths = [Path(r) for r in records]
    if not paths:
        raise DataError(None, "no record given")
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(None, f"records with the same name would overwrite each other: {dupes}")
    for p in paths:
        wfdb_io.read_header(p)  # fail on a bad record before loading the model
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_annotation_model(cfg, task, model_uri)
    started = time.perf_counter()
    entries = [annotate_record(cfg, model, p, out_dir, reference_peaks, progress) for p in paths]
    seconds = time.perf_counter() - started
    beats = sum(e["beats"] for e in entries)
    summary = {
        "model": model.uri,
        "context_columns": model.context_columns,
        "out_dir": str(out_dir),
        "records": entries,
        "beats": beats,
        "seconds": round(seconds, 3),
        "beats_per_s": round(beats / seconds, 1) if seconds > 0 else None,
    }
    write_summary(out_dir / SUMMARY_FILE, entries)
    return summary


def write_summary(path: Path, entries: list[dict[str, Any]]) -> None:
    """Merge the records' entries into ``annotate_summary.json`` (by record name)."""
    from ecgops.io import write_json

    known: dict[str, Any] = {}
    if path.is_file():
        try:
            known = {e["record"]: e for e in json.loads(path.read_text()).get("records", [])}
        except (ValueError, KeyError, TypeError):
            log.warning("%s: unreadable summary, replaced", path)
    known.update({e["record"]: e for e in entries})
    write_json({"records": list(known.values())}, path)
