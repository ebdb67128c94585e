"""Import and export the Kaggle "ECG Heartbeat Categorization" CSV layout.

Layout: no header; each row 187 values (the beat, in [0, 1], zero-padded at the end) then
the label. Files: ``mitbih_train.csv`` / ``mitbih_test.csv`` (labels 0-4 = N, S, V, F, Q) and
``ptbdb_normal.csv`` (label 0) / ``ptbdb_abnormal.csv`` (label 1).

The CSVs carry no record or patient ids: an imported row gets ``patient = record =
kaggle-<file>-<row>`` (``beat`` 0, ``source`` kaggle), so the ``patient`` split scheme is not
patient-level on imported data (it degenerates to a per-beat split; for MIT-BIH it reuses the
train/test files, kept in the ``kaggle_split`` column).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.build import class_counts, save_table, signal_columns, table_path
from ecgops.errors import DataError
from ecgops.io import atomic_path

log = logging.getLogger(__name__)

SOURCE = "kaggle"
FILES: dict[str, dict[str, str]] = {
    "mitbih": {"train": "mitbih_train.csv", "test": "mitbih_test.csv"},
    "ptb": {"normal": "ptbdb_normal.csv", "abnormal": "ptbdb_abnormal.csv"},
}
PTB_LABELS = {"normal": 0, "abnormal": 1}
FLOAT_FORMAT = "%.18e"  # as in the Kaggle files


def _fail_line(path: Path, lines: list[bytes], n_cols: int) -> None:
    """Raise the DataError for the first line that is not ``n_cols`` numbers."""
    for number, raw in enumerate(lines, start=1):
        cells = raw.decode("utf-8", errors="replace").strip().split(",")
        for col, cell in enumerate(cells, start=1):
            try:
                float(cell)
            except ValueError:
                last = number == len(lines)
                hint = " (the last line looks truncated)" if last else ""
                raise DataError(
                    path, f"line {number}, column {col}: {cell.strip()!r} is not a number{hint}"
                ) from None
    raise DataError(path, "could not be parsed as numbers")


def read_kaggle_csv(
    path: Path, allowed_labels: list[int], n_values: int = 187
) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one Kaggle CSV.

    Args:
        path: the CSV file.
        allowed_labels: labels this file may hold.
        n_values: samples per beat (187).

    Returns:
        ``(x, y)``: float32 beats (n, n_values) and int64 labels (n,).

    Raises:
        DataError: naming the file and, where it applies, the line and column: missing or
            empty file, a header row, a blank line, a wrong column count, a truncated last
            line, a non-numeric cell, NaN or infinite values, values outside [0, 1], a label
            that is not an integer or not allowed in this file.
    """
    n_cols = n_values + 1
    if not path.is_file():
        raise DataError(path, "file not found")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(path, "file is empty")
    complete = data.endswith(b"\n")
    lines = data.split(b"\n")
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    first = lines[0].split(b",")[0].strip().decode("utf-8", errors="replace")
    try:
        float(first)
    except ValueError:
        raise DataError(
            path, f"line 1 is a header row ({first!r}...); the Kaggle layout has no header"
        ) from None
    counts = np.fromiter((line.count(b",") + 1 for line in lines), dtype=np.int64)
    blank = np.fromiter((not line.strip() for line in lines), dtype=bool)
    if blank.any():
        raise DataError(path, f"line {int(np.argmax(blank)) + 1} is empty")
    wrong = np.flatnonzero(counts != n_cols)
    if len(wrong):
        i = int(wrong[0])
        if i == len(lines) - 1 and not complete and counts[i] < n_cols:
            raise DataError(
                path,
                f"truncated last line {i + 1}: {counts[i]} of {n_cols} values "
                "(the file ends mid-row)",
            )
        raise DataError(
            path,
            f"line {i + 1} has {counts[i]} columns, expected {n_cols} "
            f"({n_values} samples then the label)",
        )
    try:
        values = pd.read_csv(
            io.BytesIO(data), header=None, dtype=np.float64, engine="c", skip_blank_lines=False
        ).to_numpy()
    except (ValueError, pd.errors.ParserError):
        _fail_line(path, lines, n_cols)
    if values.shape != (len(lines), n_cols):
        raise DataError(path, f"parsed shape {values.shape}, expected ({len(lines)}, {n_cols})")
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(v[0]) for v in np.nonzero(~finite))
        cell = lines[row].decode("utf-8", errors="replace").split(",")[col].strip()
        raise DataError(
            path, f"line {row + 1}, column {col + 1}: missing or non-finite value {cell!r}"
        )
    x, y = values[:, :n_values], values[:, n_values]
    outside = (x < 0) | (x > 1)
    if outside.any():
        row, col = (int(v[0]) for v in np.nonzero(outside))
        raise DataError(
            path, f"line {row + 1}, column {col + 1}: value {x[row, col]:g} outside [0, 1]"
        )
    not_int = y != np.round(y)
    if not_int.any():
        row = int(np.argmax(not_int))
        raise DataError(path, f"line {row + 1}: label {y[row]:g} is not an integer")
    bad = ~np.isin(y, allowed_labels)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            path,
            f"line {row + 1}: label {y[row]:g} out of range for {path.name} "
            f"(allowed: {', '.join(str(v) for v in allowed_labels)})",
        )
    return x.astype(np.float32), y.astype(np.int64)


def kaggle_frame(x: np.ndarray, y: np.ndarray, stem: str) -> pd.DataFrame:
    """Beat table rows for one Kaggle file (ids ``kaggle-<stem>-<row>``)."""
    ids = np.array([f"{SOURCE}-{stem}-{i}" for i in range(len(y))], dtype=object).astype(str)
    meta = pd.DataFrame(
        {
            "patient": ids,
            "record": ids,
            "beat": np.zeros(len(y), dtype=np.int64),
            "label": y.astype(np.int64),
            "source": np.full(len(y), SOURCE).astype(str),
        }
    )
    return pd.concat([meta, pd.DataFrame(x, columns=signal_columns(x.shape[1]))], axis=1)


def read_task(cfg: Config, directory: Path, task: str) -> tuple[pd.DataFrame, dict] | None:
    """The beat table of one task from its two Kaggle files (None when neither is there).

    Args:
        cfg: configuration.
        directory: folder with the Kaggle CSVs.
        task: ``mitbih`` or ``ptb``.

    Returns:
        ``(table, summary)`` or None.

    Raises:
        DataError: only one of the task's two files is there, or a file is bad.
    """
    files = FILES[task]
    paths = {part: directory / name for part, name in files.items()}
    present = {part: p for part, p in paths.items() if p.exists()}
    if not present:
        return None
    if len(present) < len(paths):
        missing = next(p for part, p in paths.items() if part not in present)
        other = ", ".join(p.name for p in present.values())
        raise DataError(missing, f"file not found (needed with {other})")
    n_classes = len(cfg.class_names(task))
    frames, per_file = [], {}
    for part, path in paths.items():
        allowed = list(range(n_classes)) if task == "mitbih" else [PTB_LABELS[part]]
        x, y = read_kaggle_csv(path, allowed, cfg.data.beat_len)
        frame = kaggle_frame(x, y, path.stem)
        if task == "mitbih":
            frame.insert(5, "kaggle_split", part)
        frames.append(frame)
        per_file[path.name] = len(frame)
    df = pd.concat(frames, ignore_index=True)
    summary = {
        "task": task,
        "source": SOURCE,
        "directory": str(directory),
        "beats": len(df),
        "patients": None,
        "per_class": class_counts(df["label"], cfg.class_names(task)),
        "per_file": per_file,
        "note": "Kaggle CSVs carry no patient ids: the patient split is not patient-level",
    }
    return df, summary


def import_kaggle(cfg: Config, directory: str | Path) -> dict[str, Path]:
    """Import the Kaggle CSVs of a folder as the processed beat tables.

    Every file present is read and checked, and every table validated, before anything is
    written; then ``<processed>/{task}.parquet`` and its summary are replaced atomically.

    Args:
        cfg: configuration.
        directory: folder holding ``mitbih_train.csv`` + ``mitbih_test.csv`` and/or
            ``ptbdb_normal.csv`` + ``ptbdb_abnormal.csv``.

    Returns:
        Task -> written parquet path.

    Raises:
        DataError: a missing folder or file, a bad file (see :func:`read_kaggle_csv`).
        ValidationFailed: a table failed validation (nothing is written).
    """
    from ecgops.data.validation import validate_beats

    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(directory, "not a directory")
    tables = {}
    for task in FILES:
        result = read_task(cfg, directory, task)
        if result is not None:
            tables[task] = result
    if not tables:
        names = ", ".join(n for files in FILES.values() for n in files.values())
        raise DataError(directory, f"none of the Kaggle files found ({names})")
    for task, (df, _) in tables.items():
        report_dir = cfg.path("outputs") / "validation" / task
        validate_beats(df, task, cfg, directory, report_dir=report_dir)
    written = {}
    for task, (df, summary) in tables.items():
        written[task] = save_table(cfg, task, df, summary)
    return written


def write_kaggle_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write beat rows in the Kaggle layout (no header, 187 values then the label), atomically.

    Args:
        df: beat table rows (signal columns ``x0..`` and ``label``).
        path: target CSV.

    Returns:
        The path.
    """
    cols = [c for c in df.columns if c.startswith("x") and c[1:].isdigit()]
    values = np.column_stack(
        [df[cols].to_numpy(dtype=np.float32).astype(np.float64), df["label"].to_numpy(float)]
    )
    with atomic_path(path) as tmp:
        np.savetxt(tmp, values, fmt=FLOAT_FORMAT, delimiter=",")
    return path


def export_kaggle(cfg: Config, outdir: str | Path) -> dict[str, Path]:
    """Write the processed tables in the Kaggle layout.

    MIT-BIH goes to ``mitbih_train.csv`` (the ``beat`` split's train and val parts) and
    ``mitbih_test.csv`` (its test part); PTB to ``ptbdb_normal.csv`` / ``ptbdb_abnormal.csv``.
    Tasks whose table is missing are skipped with a warning.

    Args:
        cfg: configuration.
        outdir: output folder (created).

    Returns:
        File name -> written path.

    Raises:
        DataError: no processed table at all, or the MIT-BIH split is missing or stale.
    """
    from ecgops.data.splits import load_assignments

    outdir = Path(outdir)
    written: dict[str, Path] = {}
    for task, files in FILES.items():
        path = table_path(cfg, task)
        if not path.is_file():
            log.warning("%s: not built; %s skipped", path, ", ".join(files.values()))
            continue
        df = pd.read_parquet(path)
        if task == "mitbih":
            parts = load_assignments(cfg, task, n_rows=len(df))["beat"].to_numpy()
            train = df[np.isin(parts, ["train", "val", "gate"])]  # gate: DS1 or Kaggle train rows
            test = df[parts == "test"]
            written[files["train"]] = write_kaggle_csv(train, outdir / files["train"])
            written[files["test"]] = write_kaggle_csv(test, outdir / files["test"])
        else:
            for part, label in PTB_LABELS.items():
                rows = df[df["label"] == label]
                written[files[part]] = write_kaggle_csv(rows, outdir / files[part])
    if not written:
        raise DataError(cfg.path("processed"), "no processed tables to export; build first")
    return written
