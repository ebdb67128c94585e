"""Batch prediction on Kaggle-layout CSVs and record-level diagnosis of WFDB records.

- :func:`predict_csv` streams a CSV of beats (187 values per line, or 188 with the label; no
  header) through a registered model in chunks, with a progress bar, and writes
  ``pred, pred_name, p_0..p_{k-1}``: one row per input line, in order. Memory is bounded by
  the chunk size (plus 4 bytes x k per row for the summary). Bad input stops it with a
  :class:`~ecgops.errors.DataError` naming the file and line; the output is written to a
  temporary file and moved in place only when every chunk succeeded.
- :func:`predict_records` reads WFDB records (MIT-BIH, PTB-XL or PTB Diagnostic layout),
  extracts their beats with the data pipeline's own functions, predicts them, and aggregates
  them into one decision per record (``registry.record_aggregation``).
- :func:`resolve_model_uri` turns ``--task`` / ``--model`` into a URI and refuses models from
  outside the project's registry (pickled models run code when loaded).
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
from ecgops.errors import DataError, RegistryError
from ecgops.io import atomic_path
from ecgops.schema import BEAT_LEN

log = logging.getLogger(__name__)

TRUSTED_SCHEMES = ("models:/", "runs:/")
HEADER_SHARE = 0.5
"""A first line with more than this share of non-numeric cells is taken for a header row."""
COUNT_BLOCK = 1 << 20


# ---- model URIs -------------------------------------------------------------------------------


def resolve_model_uri(cfg: Config, task: str | None = None, model: str | None = None) -> str:
    """The model to use: ``model`` if given (checked), else the task's champion.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``: use ``models:/ecgops-{task}@champion``.
        model: an explicit URI: ``models:/...`` or ``runs:/...`` (resolved against the
            project's tracking server) or a local model folder inside the project.

    Returns:
        The model URI.

    Raises:
        RegistryError: neither given, or a model from outside the project's registry.
    """
    from ecgops.registry.register import CHAMPION, registered_model_name

    if model:
        check_trusted(cfg, model)
        return model
    if not task:
        raise RegistryError("give a task (its champion is used) or a model URI")
    if task not in ("ptb", "mitbih"):
        raise RegistryError(f"unknown task {task!r}; expected ptb or mitbih")
    return f"models:/{registered_model_name(cfg, task)}@{CHAMPION}"


def check_trusted(cfg: Config, uri: str) -> None:
    """Refuse model URIs outside the project's own registry and folders.

    Raises:
        RegistryError: another scheme (``http:``, ``s3:`` ...) or a path outside the project.
    """
    if uri.startswith(TRUSTED_SCHEMES):
        return
    if "://" in uri or uri.startswith(("http:", "https:", "s3:", "gs:", "dbfs:")):
        raise RegistryError(
            f"refusing to load a model from {uri}: pickled models execute code when loaded, so "
            "only the project's registry (models:/..., runs:/...) or a folder inside the "
            "project is trusted"
        )
    path = Path(uri).expanduser().resolve()
    roots = [cfg.root.resolve()]
    artifact_root = cfg.artifact_root
    if artifact_root.startswith("file://"):
        roots.append(Path(artifact_root[len("file://") :]).resolve())
    if not any(path == r or r in path.parents for r in roots):
        raise RegistryError(
            f"refusing to load a model from {path}: it is outside the project ({cfg.root}); "
            "register it first or copy it into the project"
        )


def load_model(model_uri: str, cfg: Config | None = None) -> Any:
    """Load a pyfunc model (with the project's tracking URI when ``cfg`` is given).

    Raises:
        RegistryError: the model (e.g. the champion alias) does not exist.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    if cfg is not None:
        from ecgops.tracking import configure

        configure(cfg)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        hint = ""
        if "@" in model_uri:
            hint = " (no such alias yet: run `ecgops register` and `ecgops promote` first)"
        raise RegistryError(f"cannot load model {model_uri}: {exc.message}{hint}") from exc
    except OSError as exc:
        raise RegistryError(f"cannot load model {model_uri}: {exc}") from exc


def model_classes(model: Any) -> tuple[list[str], float]:
    """Class names and input tolerance recorded in the model's metadata."""
    from ecgops.registry.pyfunc import INPUT_TOLERANCE, METADATA_KEY

    info = (model.metadata.metadata or {}).get(METADATA_KEY, {})
    names = info.get("class_names")
    if not names:
        outputs = model.metadata.signature.outputs.input_names() if model.metadata.signature else []
        names = [str(j) for j in range(sum(1 for c in outputs if str(c).startswith("p_")))]
    return list(names), float(info.get("tolerance", INPUT_TOLERANCE))


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
    model_uri: str | Any,
    input_csv: str | Path,
    output_csv: str | Path,
    chunk_size: int | None = None,
    cfg: Config | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict every beat of a Kaggle-layout CSV, streaming in chunks.

    Args:
        model_uri: model to use (``models:/ecgops-ptb@champion``, a run URI or a local path),
            or an already loaded pyfunc model.
        input_csv: header-less CSV, 187 values per line (188 with the label).
        output_csv: where to write ``pred, pred_name, p_0..p_{k-1}`` (with a header).
        chunk_size: rows per chunk (default ``serving.batch_chunk_size``, else 10,000).
        cfg: configuration (tracking URI for ``models:/`` URIs; the trust check).
        progress: show a tqdm progress bar on stderr (when it is a terminal).

    Returns:
        Summary: rows, counts per class, metrics when the labels are present, timing.

    Raises:
        DataError: bad input (file and line named); nothing is written.
        RegistryError: the model cannot be loaded or is not trusted.
    """
    from tqdm import tqdm

    from ecgops.registry.pyfunc import beat_frame, output_columns

    input_csv, output_csv = Path(input_csv), Path(output_csv)
    loaded = None if isinstance(model_uri, str) else model_uri
    if cfg is not None and loaded is None:
        check_trusted(cfg, model_uri)
    chunk_size = chunk_size or (cfg.serving.batch_chunk_size if cfg else 10_000)
    total = count_lines(input_csv) if input_csv.is_file() else None
    chunks = iter_csv_chunks(input_csv, chunk_size)
    first = next(chunks, None)  # fail on a missing/empty/malformed file before loading the model
    if first is None:
        raise DataError(input_csv, "empty file (no beats)")
    check_chunk(first[1], input_csv, first[0], n_classes=None, tolerance=None)
    model = loaded or load_model(model_uri, cfg)
    names, tolerance = model_classes(model)
    k = len(names)
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
            x, y = check_chunk(chunk, input_csv, line, k, tolerance)
            if labelled is None:
                labelled = y is not None
            elif labelled != (y is not None):
                raise DataError(input_csv, f"line {line}: the number of columns changes")
            frame = model.predict(beat_frame(x))
            frame = frame[output_columns(k)]
            frame.to_csv(tmp, mode="a", header=(n == 0), index=False, float_format="%.6g")
            proba = frame[[f"p_{j}" for j in range(k)]].to_numpy(np.float32)
            counts += np.bincount(frame["pred"].to_numpy(), minlength=k)[:k]
            probas.append(proba)
            if y is not None:
                labels.append(y)
            n += len(x)
            bar.update(len(x))
    seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "model": model_uri if loaded is None else "(loaded model)",
        "input": str(input_csv),
        "output": str(output_csv),
        "rows": n,
        "counts": {name: int(c) for name, c in zip(names, counts, strict=True)},
        "labelled": bool(labelled),
        "seconds": round(seconds, 3),
        "beats_per_s": round(n / seconds, 1) if seconds > 0 else None,
    }
    if labelled:
        from ecgops.evaluation.metrics import classification_metrics

        y_all = np.concatenate(labels)
        p_all = np.concatenate(probas)
        summary["metrics"] = {
            key: round(value, 4) for key, value in classification_metrics(y_all, p_all).items()
        }
        summary["true_counts"] = {
            name: int(c) for name, c in zip(names, np.bincount(y_all, minlength=k), strict=True)
        }
    return summary


def _chain(first: tuple[int, pd.DataFrame], rest: Iterator[tuple[int, pd.DataFrame]]):
    yield first
    yield from rest


# ---- record-level diagnosis -------------------------------------------------------------------


def lead_candidates(cfg: Config, task: str) -> list[str]:
    """Lead names tried in order (case-insensitive): the task's own lead first.

    PTB uses lead II (``II`` in PTB-XL, ``ii`` in PTB Diagnostic); MIT-BIH uses MLII, a
    modified lead II, so each task falls back on the other's name.
    """
    ordered = (
        [cfg.data.ptbxl.lead, cfg.data.ptbdb.lead, cfg.data.mitbih.lead]
        if task == "ptb"
        else [cfg.data.mitbih.lead, cfg.data.ptbxl.lead, cfg.data.ptbdb.lead]
    )
    out: list[str] = []
    for name in ordered:
        if name.lower() not in {o.lower() for o in out}:
            out.append(name)
    return out


def record_beats(cfg: Config, task: str, path: str | Path) -> tuple[np.ndarray, str]:
    """Beats of one WFDB record, extracted as for the task's beat table.

    The lead is picked by name (:func:`lead_candidates`; MIT-BIH records without MLII use
    ``data.mitbih.fallback_channel``). R-peaks: the reference annotations for ``mitbih`` when
    the record has them (as in training), else the PTB detector.

    Args:
        cfg: configuration (``data`` section).
        task: ``ptb`` or ``mitbih``.
        path: record path without extension.

    Returns:
        ``(beats, note)``: float32 (n, 187) (n may be 0) and what was used or why none.

    Raises:
        DataError: the record's files are missing or unreadable.
    """
    from ecgops.data import beats as segmentation
    from ecgops.data import wfdb_io

    path = Path(path)
    header = wfdb_io.read_header(path)
    signal_names = [str(s) for s in (header.sig_name or [])]
    lower = [s.strip().lower() for s in signal_names]
    lead_name = next((c for c in lead_candidates(cfg, task) if c.lower() in lower), None)
    fallback = None
    if lead_name is None:
        if task == "mitbih" and signal_names:
            fallback = cfg.data.mitbih.fallback_channel
            lead_name = cfg.data.mitbih.lead
        else:
            wanted = "/".join(lead_candidates(cfg, task))
            return _no_beats(f"no lead {wanted} (signals: {', '.join(signal_names) or 'none'})")
    lead = wfdb_io.read_lead(path, lead_name, fallback)
    signal = wfdb_io.resample(lead.signal, lead.fs, cfg.data.fs)
    params = segmentation.SegmentParams.from_config(cfg.data)
    ann_file = path.with_name(f"{path.name}.{cfg.data.mitbih.annotator}")
    if task == "mitbih" and ann_file.is_file():
        from ecgops.data.sources.mitdb import beat_annotations, symbol_labels

        ann = wfdb_io.read_annotations(path, cfg.data.mitbih.annotator)
        samples, _ = beat_annotations(ann, symbol_labels(cfg.data.mitbih.beat_symbols))
        peaks = np.sort(wfdb_io.to_rate(samples, lead.fs, cfg.data.fs))
        seg, how = segmentation.segment(signal, params, peaks=peaks), "annotated R-peaks"
    else:
        detector = segmentation.make_detector(cfg.data, refractory=True)
        seg, how = segmentation.segment(signal, params, detector=detector), "detected R-peaks"
    table = segmentation.drop_stubs(seg, params.min_span)
    if len(table) == 0:
        return _no_beats(
            f"no usable beat in lead {lead.name} ({seg.n_windows} windows of "
            f"{cfg.data.window_s:g} s, {seg.empty_windows} flat or with fewer than "
            f"{params.min_beats} R-peaks; {how})"
        )
    return table.beats.astype(np.float32), f"{len(table)} beats, lead {lead.name}, {how}"


def _no_beats(note: str) -> tuple[np.ndarray, str]:
    return np.zeros((0, BEAT_LEN), dtype=np.float32), note


def predict_proba(model: Any, x: np.ndarray, chunk_size: int) -> np.ndarray:
    """Class probabilities (n, k) of beats ``x`` (n, 187), predicted in chunks."""
    from ecgops.registry.pyfunc import beat_frame

    names, _ = model_classes(model)
    cols = [f"p_{j}" for j in range(len(names))]
    step = max(1, int(chunk_size))
    parts = [
        model.predict(beat_frame(x[i : i + step]))[cols].to_numpy(np.float64)
        for i in range(0, len(x), step)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(cols)))


def record_rule(cfg: Config, model_uri: str) -> dict[str, Any] | None:
    """The record rule stored on a registered version (``models:/name@alias`` or
    ``models:/name/version``), or None (argmax) for any other model URI."""
    from ecgops.evaluation.records import RULE_TAG, rule_from_tag
    from ecgops.registry.register import mlflow_client

    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", model_uri)
    if not match:
        return None
    name, alias, version = match.groups()
    client = mlflow_client(cfg)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except Exception as exc:  # noqa: BLE001 - the load that follows reports a missing model
        log.debug("no record rule for %s: %s", model_uri, exc)
        return None
    return rule_from_tag((mv.tags or {}).get(RULE_TAG))


def predict_records(
    cfg: Config,
    task: str,
    record_paths: list[str | Path],
    output_csv: str | Path,
    model_uri: str | None = None,
) -> dict[str, Any]:
    """One decision per WFDB record: extract beats, predict them, aggregate.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih`` (lead, R-peaks, classes).
        record_paths: record paths without extension (any of the three layouts).
        output_csv: ``record, n_beats, pred, pred_name, p_0..p_{k-1}`` (header, one row per
            record, in the given order; empty prediction where ``n_beats`` is 0).
        model_uri: model (default: the task's champion).

    Returns:
        Summary: records, counts per class, the records without beats with the reason.

    Raises:
        DataError: a record is missing or unreadable (nothing is written).
    """
    from ecgops.evaluation.records import aggregate, decide

    model_uri = model_uri or resolve_model_uri(cfg, task=task)
    check_trusted(cfg, model_uri)
    if not record_paths:
        raise DataError(None, "no record given")
    extracted = [(str(p), *record_beats(cfg, task, p)) for p in record_paths]
    model = load_model(model_uri, cfg)
    rule = record_rule(cfg, model_uri)
    method = (rule or {}).get("aggregation", cfg.registry.record_aggregation)
    names, _ = model_classes(model)
    k = len(names)
    cols = [f"p_{j}" for j in range(k)]
    rows = []
    skipped = {}
    for record, beats, note in extracted:
        row: dict[str, Any] = {"record": record, "n_beats": len(beats)}
        if len(beats) == 0:
            print(f"{record}: {note}", file=sys.stderr)
            skipped[record] = note
            row.update({"pred": pd.NA, "pred_name": "", **dict.fromkeys(cols, np.nan)})
        else:
            p = aggregate(predict_proba(model, beats, cfg.serving.batch_chunk_size), method)
            pred = int(decide(p, rule)[0])
            row.update({"pred": pred, "pred_name": names[pred], **dict(zip(cols, p, strict=True))})
            log.info("%s: %s", record, note)
        rows.append(row)
    out = pd.DataFrame(rows, columns=["record", "n_beats", "pred", "pred_name", *cols])
    out["pred"] = out["pred"].astype("Int64")
    with atomic_path(output_csv) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g")
    counts = out["pred_name"][out["n_beats"] > 0].value_counts()
    return {
        "model": model_uri,
        "output": str(output_csv),
        "records": len(out),
        "aggregation": method,
        "rule": rule or {"kind": "argmax"},
        "counts": {name: int(counts.get(name, 0)) for name in names},
        "no_beats": skipped,
    }


def record_probabilities(
    cfg: Config, model: Any, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict a beat table (with a ``record`` column) and aggregate it per record.

    Returns:
        ``(beat probabilities (n, k), record probabilities (r, k), record labels (r,))``,
        aggregated with ``registry.record_aggregation``.
    """
    from ecgops.evaluation.records import per_record
    from ecgops.schema import labels, signals

    proba = predict_proba(model, signals(frame), cfg.serving.batch_chunk_size)
    keys = frame["record"].astype(str).to_numpy()
    return proba, *per_record(proba, labels(frame), keys, cfg.registry.record_aggregation)


def evaluate_records(
    cfg: Config, task: str, model_uri: str, scheme: str = "patient", part: str = "test"
) -> dict[str, Any]:
    """Beat-level vs record-level balanced accuracy on a split part.

    Record decisions use the argmax of the aggregate and the rule learned on the validation
    part (:func:`ecgops.evaluation.records.fit_rule`), never on ``part``. A record's true
    label is its beats' majority label (PTB records have a single label). Use a model trained
    on the same scheme, or the test part is not held out.

    Returns:
        ``{"beats", "records", "beat_balanced_accuracy", "record_balanced_accuracy",
        "record_balanced_accuracy_rule", "rule", ...}``.
    """
    from sklearn.metrics import balanced_accuracy_score

    from ecgops.data.splits import load_split
    from ecgops.evaluation.records import decide, fit_rule
    from ecgops.schema import labels

    parts = load_split(cfg, task, scheme)
    df = parts[part]
    if df.empty:
        raise DataError(None, f"{task}/{scheme} has an empty {part} part")
    model = load_model(model_uri, cfg)
    method = cfg.registry.record_aggregation
    proba, rec_p, rec_y = record_probabilities(cfg, model, df)
    _, val_p, val_y = record_probabilities(cfg, model, parts["val"])
    rule = fit_rule(val_p, val_y, method)
    return {
        "task": task,
        "scheme": scheme,
        "part": part,
        "model": model_uri,
        "beats": int(len(df)),
        "records": len(rec_y),
        "aggregation": method,
        "rule": rule,
        "beat_balanced_accuracy": round(
            float(balanced_accuracy_score(labels(df), proba.argmax(1))), 4
        ),
        "record_balanced_accuracy": round(
            float(balanced_accuracy_score(rec_y, rec_p.argmax(1))), 4
        ),
        "record_balanced_accuracy_rule": round(
            float(balanced_accuracy_score(rec_y, decide(rec_p, rule))), 4
        ),
    }
