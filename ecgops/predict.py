"""Batch prediction on Kaggle-layout CSVs and record-level diagnosis of WFDB records.

- :func:`predict_csv` streams a CSV of beats (187 values per line, or 188 with the label; no
  header) through a registered model in chunks, with a progress bar, and writes
  ``pred, pred_name, p_0..p_{k-1}``: one row per input line, in order. Memory is bounded by
  the chunk size (plus 4 bytes x k per row for the summary). Bad input stops it with a
  :class:`~ecgops.errors.DataError` naming the file and line; the output is written to a
  temporary file and moved in place only when every chunk succeeded.
- :func:`predict_records` reads WFDB records (MIT-BIH, PTB-XL or PTB Diagnostic layout),
  extracts their beats as the beat tables do (:func:`ecgops.data.records.record_beats`),
  predicts them, and aggregates them into one decision per record with the rule stored on the
  registered version (:mod:`ecgops.evaluation.records`).

Which model, the trust check, loading and the chunked prediction are the registry's
(:mod:`ecgops.registry.model`); this module only reads inputs and writes outputs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import DataError
from ecgops.io import atomic_path
from ecgops.registry.model import LoadedModel, check_trusted, load_model, resolve_model_uri
from ecgops.schema import BEAT_LEN

log = logging.getLogger(__name__)

HEADER_SHARE = 0.5
"""A first line with more than this share of non-numeric cells is taken for a header row."""
COUNT_BLOCK = 1 << 20


# ---- CSV input --------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    """Number of lines of a file (a last line without newline counts)."""
    n, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(COUNT_BLOCK):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def iter_csv_chunks(path: Path, chunk_size: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield ``(first_line_number, chunk)`` of a header-less CSV, with clear errors.

    Raises:
        DataError: missing, empty or malformed file (a line with more values than line 1).
    """
    if not path.exists():
        raise DataError(path, "input CSV not found")
    if not path.is_file():
        raise DataError(path, "not a file")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file (no beats)")
    try:
        reader = pd.read_csv(
            path, header=None, chunksize=chunk_size, skip_blank_lines=False, engine="c"
        )
        line = 1
        for chunk in reader:
            yield line, chunk
            line += len(chunk)
    except pd.errors.EmptyDataError as exc:
        raise DataError(path, "empty file (no beats)") from exc
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            want, at, saw = match.groups()
            raise DataError(path, f"line {at}: {saw} values, but line 1 has {want}") from exc
        raise DataError(path, f"not a readable CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a text CSV: {exc}") from exc


def check_chunk(
    chunk: pd.DataFrame,
    path: Path,
    first_line: int,
    n_classes: int | None,
    tolerance: float | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one chunk of Kaggle-layout rows.

    Args:
        chunk: the rows (unnamed columns).
        path: the file, for messages.
        first_line: line number of the chunk's first row (1-based).
        n_classes: number of classes (labels must be ``0..n_classes-1``); None skips the check.
        tolerance: slack around [0, 1]; None skips the range check.

    Returns:
        ``(x, y)``: float32 beats (n, 187) and int64 labels (or None without a label column).

    Raises:
        DataError: naming the file, the line and the problem.
    """
    width = chunk.shape[1]
    if width not in (BEAT_LEN, BEAT_LEN + 1):
        raise DataError(
            path,
            f"line {first_line}: {width} values per line; expected {BEAT_LEN} (a beat) or "
            f"{BEAT_LEN + 1} (a beat and its label)",
        )
    values = chunk
    if any(
        pd.api.types.is_object_dtype(d) or pd.api.types.is_string_dtype(d) for d in chunk.dtypes
    ):
        values = chunk.apply(pd.to_numeric, errors="coerce")
        bad = values.isna() & chunk.notna()
        if bad.any(axis=None):
            rows = np.flatnonzero(bad.any(axis=1).to_numpy())
            row = int(rows[0])
            share = float(bad.iloc[row].mean())
            if first_line + row == 1 and share > HEADER_SHARE:
                cells = ", ".join(str(v) for v in chunk.iloc[0, :3])
                raise DataError(
                    path,
                    f"line 1 looks like a header row ({cells}, ...); the Kaggle layout has no "
                    "header: remove it",
                )
            col = int(np.flatnonzero(bad.iloc[row].to_numpy())[0])
            raise DataError(
                path,
                f"line {first_line + row}, column {col + 1}: non-numeric value "
                f"{chunk.iat[row, col]!r}",
            )
    arr = values.to_numpy(dtype=np.float64)
    x = arr[:, :BEAT_LEN]
    missing = ~np.isfinite(arr)
    if missing.any():
        row, col = (int(v) for v in np.argwhere(missing)[0])
        line = first_line + row
        if np.isnan(arr[row]).all():
            raise DataError(path, f"line {line}: empty line")
        if np.isnan(arr[row, col:]).all():
            raise DataError(
                path, f"line {line}: only {col} values; expected {BEAT_LEN} or {BEAT_LEN + 1}"
            )
        raise DataError(path, f"line {line}, column {col + 1}: missing, NaN or infinite value")
    out = (x < -tolerance) | (x > 1.0 + tolerance) if tolerance is not None else None
    if out is not None and out.any():
        row, col = (int(v) for v in np.argwhere(out)[0])
        raise DataError(
            path,
            f"line {first_line + row}, column {col + 1}: value {x[row, col]:.4g} is outside "
            "[0, 1] (beats must be min-max normalised)",
        )
    y = None
    if width == BEAT_LEN + 1:
        labels = arr[:, BEAT_LEN]
        bad_label = (labels != np.round(labels)) | (labels < 0)
        if n_classes is not None:
            bad_label |= labels >= n_classes
        if bad_label.any():
            row = int(np.flatnonzero(bad_label)[0])
            raise DataError(
                path,
                f"line {first_line + row}, column {BEAT_LEN + 1}: label {labels[row]:g} is not a "
                + (f"class index 0..{n_classes - 1}" if n_classes else "class index"),
            )
        y = labels.astype(np.int64)
    return x.astype(np.float32), y


def predict_csv(
    model: str | LoadedModel,
    input_csv: str | Path,
    output_csv: str | Path,
    chunk_size: int | None = None,
    cfg: Config | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict every beat of a Kaggle-layout CSV, streaming in chunks.

    Args:
        model: model URI (``models:/ecgops-ptb@champion``, a run URI or a local path; needs
            ``cfg``), or a model loaded with :func:`ecgops.registry.model.load_model`.
        input_csv: header-less CSV, 187 values per line (188 with the label).
        output_csv: where to write ``pred, pred_name, p_0..p_{k-1}`` (with a header).
        chunk_size: rows per chunk (default: the loaded model's, ``serving.batch_chunk_size``).
        cfg: configuration (tracking URI, the trust check, the chunk size); needed with a URI.
        progress: show a tqdm progress bar on stderr (when it is a terminal).

    Returns:
        Summary: rows, counts per class, metrics when the labels are present, timing.

    Raises:
        DataError: bad input (file and line named); nothing is written.
        RegistryError: the model cannot be loaded or is not trusted.
    """
    from tqdm import tqdm

    input_csv, output_csv = Path(input_csv), Path(output_csv)
    loaded = model if isinstance(model, LoadedModel) else None
    if loaded is None:
        if cfg is None:
            raise ValueError("predict_csv: a model URI needs cfg (trust check, tracking URI)")
        check_trusted(cfg, model)
    step = chunk_size or (loaded.chunk_size if loaded else cfg.serving.batch_chunk_size)
    total = count_lines(input_csv) if input_csv.is_file() else None
    chunks = iter_csv_chunks(input_csv, step)
    first = next(chunks, None)  # fail on a missing/empty/malformed file before loading the model
    if first is None:
        raise DataError(input_csv, "empty file (no beats)")
    check_chunk(first[1], input_csv, first[0], n_classes=None, tolerance=None)
    loaded = loaded or load_model(model, cfg)
    names, k = loaded.class_names, loaded.n_classes
    counts = np.zeros(k, dtype=np.int64)
    probas, labels = [], []
    labelled: bool | None = None
    start = time.perf_counter()
    n = 0
    bar = tqdm(
        total=total, unit="beat", desc="predict", disable=not progress or None, file=sys.stderr
    )
    with atomic_path(output_csv) as tmp, bar:
        for line, chunk in _chain(first, chunks):
            x, y = check_chunk(chunk, input_csv, line, k, loaded.tolerance)
            if labelled is None:
                labelled = y is not None
            elif labelled != (y is not None):
                raise DataError(input_csv, f"line {line}: the number of columns changes")
            frame = loaded.predict_frame(x)
            frame.to_csv(tmp, mode="a", header=(n == 0), index=False, float_format="%.6g")
            counts += np.bincount(frame["pred"].to_numpy(), minlength=k)[:k]
            probas.append(frame[[f"p_{j}" for j in range(k)]].to_numpy(np.float32))
            if y is not None:
                labels.append(y)
            n += len(x)
            bar.update(len(x))
    seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "model": loaded.uri or "(loaded model)",
        "input": str(input_csv),
        "output": str(output_csv),
        "rows": n,
        "counts": {name: int(c) for name, c in zip(names, counts, strict=True)},
        "labelled": bool(labelled),
        "seconds": round(seconds, 3),
        "beats_per_s": round(n / seconds, 1) if seconds > 0 else None,
    }
    if labelled:
        summary.update(_labelled_summary(names, np.concatenate(labels), np.concatenate(probas)))
    return summary


def _labelled_summary(names: list[str], y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Metrics and true class counts of a labelled CSV."""
    from ecgops.evaluation.metrics import classification_metrics

    metrics = classification_metrics(y, proba)
    counts = np.bincount(y, minlength=len(names))
    return {
        "metrics": {key: round(value, 4) for key, value in metrics.items()},
        "true_counts": {name: int(c) for name, c in zip(names, counts, strict=True)},
    }


def _chain(first: tuple[int, pd.DataFrame], rest: Iterator[tuple[int, pd.DataFrame]]):
    yield first
    yield from rest


# ---- record-level diagnosis -------------------------------------------------------------------


def record_models(cfg: Config, task: str, model_uri: str | None) -> list[str]:
    """The models a record may use, best first: ``model_uri`` alone, else the task's
    multi-lead champion (where the task has one registered) then its single-lead champion.

    Raises:
        RegistryError: the explicit model is not trusted.
    """
    if model_uri:
        check_trusted(cfg, model_uri)
        return [model_uri]
    from ecgops.registry.client import (
        CHAMPION,
        MULTILEAD,
        alias_version,
        mlflow_client,
        model_kinds,
        registered_model_name,
    )

    uris = []
    if MULTILEAD in model_kinds(task):
        name = registered_model_name(cfg, task, MULTILEAD)
        try:
            found = alias_version(mlflow_client(cfg), name, CHAMPION)
        except Exception as exc:  # noqa: BLE001 - no registry: the single-lead champion only
            log.debug("no multi-lead champion: %s", exc)
            found = None
        if found is not None:
            uris.append(f"models:/{name}@{CHAMPION}")
    return [*uris, resolve_model_uri(cfg, task=task)]


def _record_input(
    cfg: Config,
    record: str,
    models: list[LoadedModel],
    explicit: bool,
    single: tuple[np.ndarray, str],
) -> tuple[int, np.ndarray, str]:
    """The first model whose leads the record has, and the record's beats for it.

    Args:
        cfg: configuration.
        record: the record's path.
        models: the candidate models, multi-lead first.
        explicit: the model was given by the user (a missing lead is an error).
        single: the record's single-lead beats and note (read before any model is loaded).

    Raises:
        MissingLeadsError: an explicit multi-lead model and a record without its leads.
    """
    from ecgops.data.multilead import MissingLeadsError, match_leads
    from ecgops.data.records import record_lead_beats, record_leads

    for i, model in enumerate(models):
        if not model.leads:
            return i, *single
        names = record_leads(record)
        missing = match_leads(names, list(model.leads))[1]
        if not missing:
            return i, *record_lead_beats(cfg, record, list(model.leads))
        if explicit:
            raise MissingLeadsError(record, missing, names)
        log.info("%s: no lead(s) %s for the multi-lead model", record, ", ".join(missing))
    raise DataError(record, "no model takes this record")  # the single-lead model always does


def predict_records(
    cfg: Config,
    task: str,
    record_paths: list[str | Path],
    output_csv: str | Path,
    model_uri: str | None = None,
) -> dict[str, Any]:
    """One decision per WFDB record: extract beats, predict them, aggregate.

    Without ``model_uri`` each record uses the task's multi-lead champion when it has that
    model's leads, else the single-lead champion (:func:`record_models`).

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih`` (lead, R-peaks, classes).
        record_paths: record paths without extension (any of the three layouts).
        output_csv: ``record, n_beats, pred, pred_name, p_0..p_{k-1}`` (header, one row per
            record, in the given order; empty prediction where ``n_beats`` is 0).
        model_uri: model (default: the task's champions, see above).

    Returns:
        Summary: records, counts per class, the records without beats with the reason, and the
        model each record used (``record_models``).

    Raises:
        DataError: a record is missing or unreadable (nothing is written);
            :class:`~ecgops.data.multilead.MissingLeadsError` when the given multi-lead model
            needs leads a record lacks (the record and the leads are named).
        RegistryError: the model is not trusted or cannot be loaded.
    """
    from ecgops.data.records import record_beats
    from ecgops.evaluation.records import aggregate, decide
    from ecgops.registry.model import record_rule

    if not record_paths:
        raise DataError(None, "no record given")
    if model_uri:
        check_trusted(cfg, model_uri)  # an untrusted model is refused before anything is read
    # every record is read and checked next: a damaged one is named before any model loads
    single = {str(p): record_beats(cfg, task, p) for p in record_paths}
    uris = record_models(cfg, task, model_uri)
    models = [load_model(uri, cfg) for uri in uris]
    extracted = [
        (str(p), *_record_input(cfg, str(p), models, model_uri is not None, single[str(p)]))
        for p in record_paths
    ]
    rules = [record_rule(cfg, uri) for uri in uris]
    methods = [(r or {}).get("aggregation", cfg.registry.record_aggregation) for r in rules]
    names = models[-1].class_names
    cols = [f"p_{j}" for j in range(models[-1].n_classes)]
    rows, skipped, used = [], {}, {}
    for record, i, beats, note in extracted:
        row: dict[str, Any] = {"record": record, "n_beats": len(beats)}
        used[record] = uris[i]
        if len(beats) == 0:
            print(f"{record}: {note}", file=sys.stderr)
            skipped[record] = note
            row.update({"pred": pd.NA, "pred_name": "", **dict.fromkeys(cols, np.nan)})
        else:
            p = aggregate(models[i].predict_proba(beats), methods[i])
            pred = int(decide(p, rules[i])[0])
            row.update({"pred": pred, "pred_name": names[pred], **dict(zip(cols, p, strict=True))})
            log.info("%s: %s (%s)", record, note, uris[i])
        rows.append(row)
    out = pd.DataFrame(rows, columns=["record", "n_beats", "pred", "pred_name", *cols])
    out["pred"] = out["pred"].astype("Int64")
    with atomic_path(output_csv) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g")
    counts = out["pred_name"][out["n_beats"] > 0].value_counts()
    return {
        "model": uris[-1] if len(uris) == 1 else uris,
        "output": str(output_csv),
        "records": len(out),
        "aggregation": methods[-1],
        "rule": rules[-1] or {"kind": "argmax"},
        "counts": {name: int(counts.get(name, 0)) for name in names},
        "no_beats": skipped,
        "record_models": used,
    }
