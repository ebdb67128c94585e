"""Great Expectations validation of a beat table, before anything trains on it.

One GX 1.x expectation suite per task (``ptb``: labels {0, 1}; ``mitbih``: {0..4}) checks:

- the columns are exactly ``ecgops.schema``'s (meta + ``x0..x186``; ``schema.OPTIONAL_META``
  columns may be present), the signal columns are numeric and the label is an integer;
- a table with R-peak positions or RR context (MIT-BIH builds; Kaggle imports have none) has
  all of ``schema.POSITION_COLUMNS + CONTEXT_COLUMNS``, non-null: ``sample`` an integer >= 0,
  ``time_s`` >= 0, RR intervals within ``data.rhythm.valid_rr_s`` seconds and RR ratios within
  ``data.rhythm.valid_ratio`` (positive);
- every row holds 187 finite values within ``[0, validation.max_abs_value]`` (no NaN, no inf);
- labels lie in the task's label set; ids (``patient``, ``record``, ``beat``) are present;
- zero padding only at the end: after the trailing run of exact zeros is cut off, the longest
  run of exact zeros left inside the beat is at most ``validation.max_inner_zero_run`` samples
  (min-max normalisation puts an exact 0 at each window minimum, so a real beat can touch 0
  for a sample or two; a longer run inside the beat is padding in the wrong place), and the
  beat before its padding is at least ``validation.min_beat_samples`` long (an all-zero row is 0);
- row count >= ``validation.min_rows[task]`` and every class has
  >= ``validation.min_per_class[task]`` rows;
- no duplicated rows: ``(source, record, beat)`` is unique and no two rows share the same 187
  values (at most ``validation.max_duplicate_fraction`` of the rows; duplicates leak between
  splits).

Row-wise checks GX has no built-in expectation for are computed with numpy into helper columns
(``_n_nan``, ``_max``, ``_inner_zero_run``, ...) on a copy of the table and checked with standard
expectations, so every check shows in the GX result and data docs. Great Expectations is
imported lazily (it takes seconds).

This module is the entry point (:func:`validate_beats`, :func:`validate_file`,
:func:`validate_task`); the work is split by what it holds: the helper columns in
:mod:`ecgops.data.validation_columns`, the expectation suite in
:mod:`ecgops.data.validation_suite`, running GX and reading its result in
:mod:`ecgops.data.validation_gx`. Their names are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ecgops import paths
from ecgops.config import Config
from ecgops.data.validation_columns import DERIVED as DERIVED
from ecgops.data.validation_columns import ID_COLUMNS as ID_COLUMNS
from ecgops.data.validation_columns import _blank as _blank
from ecgops.data.validation_columns import _is_number as _is_number
from ecgops.data.validation_columns import _is_real_numeric as _is_real_numeric
from ecgops.data.validation_columns import _padding as _padding
from ecgops.data.validation_columns import _row_hashes as _row_hashes
from ecgops.data.validation_columns import _signal_checks as _signal_checks
from ecgops.data.validation_columns import _signal_matrix as _signal_matrix
from ecgops.data.validation_columns import derive_columns as derive_columns
from ecgops.data.validation_gx import DOCS_DIR as DOCS_DIR
from ecgops.data.validation_gx import MAX_EXAMPLES as MAX_EXAMPLES
from ecgops.data.validation_gx import _class_counts as _class_counts
from ecgops.data.validation_gx import _data_statistics as _data_statistics
from ecgops.data.validation_gx import _describe_failures as _describe_failures
from ecgops.data.validation_gx import _detail as _detail
from ecgops.data.validation_gx import _docs_site as _docs_site
from ecgops.data.validation_gx import _examples as _examples
from ecgops.data.validation_gx import _expectation_name as _expectation_name
from ecgops.data.validation_gx import _first_int as _first_int
from ecgops.data.validation_gx import _fmt as _fmt
from ecgops.data.validation_gx import _gx as _gx
from ecgops.data.validation_gx import _gx_statistics as _gx_statistics
from ecgops.data.validation_gx import _ids as _ids
from ecgops.data.validation_gx import _row_value as _row_value
from ecgops.data.validation_gx import _run_gx as _run_gx
from ecgops.data.validation_gx import _short as _short
from ecgops.data.validation_gx import _zero_runs as _zero_runs
from ecgops.data.validation_suite import INTEGER_TYPES as INTEGER_TYPES
from ecgops.data.validation_suite import build_suite_spec as build_suite_spec
from ecgops.data.validation_suite import context_spec as context_spec
from ecgops.errors import DataError, ValidationFailed
from ecgops.io import write_json

RESULT_FILE = "validation.json"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one beat table.

    Attributes:
        source: the file (or name) that was validated.
        task: ``ptb`` or ``mitbih``.
        success: whether every expectation passed.
        n_rows: rows in the table.
        class_counts: rows per label of the task's label set.
        statistics: GX statistics (expectations evaluated / failed) and data statistics
            (beat lengths, duplicates, seconds taken).
        failures: readable failure messages (empty on success).
        result_path: the GX result JSON, when a report directory was given.
        docs_path: the data docs ``index.html``, when a report directory was given.
    """

    source: str
    task: str
    success: bool
    n_rows: int
    class_counts: dict[int, int]
    statistics: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    result_path: Path | None = None
    docs_path: Path | None = None


def label_set(cfg: Config, task: str) -> list[int]:
    """The labels a task's table may hold: 0 .. number of classes - 1.

    Args:
        cfg: the configuration (class names per task).
        task: ``ptb`` or ``mitbih``.

    Returns:
        The sorted list of valid labels.
    """
    return list(range(len(cfg.class_names(task))))


def validate_beats(
    df: pd.DataFrame,
    task: str,
    cfg: Config,
    source: str | Path,
    report_dir: Path | None = None,
    *,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate a beat table with the task's Great Expectations suite.

    Args:
        df: the beat table (``patient, record, beat, label, [source], x0..x186``).
        task: ``ptb`` or ``mitbih``.
        cfg: configuration (``validation`` section: minima, value range, padding rule).
        source: the file the table came from (named in every message).
        report_dir: where to write ``validation.json`` (the GX result) and ``data_docs/``
            (GX data docs HTML); nothing is written when ``None``. Each file is replaced
            atomically; the table itself is never touched.
        raise_on_failure: raise :class:`ValidationFailed` when an expectation fails
            (default); with ``False`` return the failed report instead.

    Returns:
        The :class:`ValidationReport`.

    Raises:
        DataError: repeated column names, or names of the validator's helper columns.
        ValidationFailed: an expectation failed (names the file, the failed expectations
            with example rows, and the result JSON).
    """
    started = time.perf_counter()
    labels = label_set(cfg, task)
    names = checked_column_names(df, source, DERIVED, "beat-table")
    frame = derive_columns(df.set_axis(names, axis=1))
    suite_spec = build_suite_spec(frame, task, cfg, labels)
    return run_suite(
        frame,
        task,
        suite_spec,
        labels,
        source,
        report_dir,
        derived=DERIVED,
        started=started,
        extra_statistics=_data_statistics(frame),
        raise_on_failure=raise_on_failure,
    )


def checked_column_names(
    df: pd.DataFrame, source: str | Path, reserved: Collection[str], kind: str
) -> pd.Index:
    """The table's column names as strings, refusing repeats and the validator's own names.

    Args:
        df: the table.
        source: the file it came from (named in the error).
        reserved: the helper columns the validator derives (a table may not bring them).
        kind: what the table is, for the message (``beat-table``, ``multi-lead table``).

    Returns:
        The names, as strings.

    Raises:
        DataError: repeated column names, or names of the validator's helper columns.
    """
    names = pd.Index([str(c) for c in df.columns])
    if names.has_duplicates:
        repeated = sorted(set(names[names.duplicated()]))
        raise DataError(source, f"repeated column names {_short(repeated)}")
    taken = [c for c in names if c in reserved]
    if taken:
        raise DataError(source, f"columns {_short(taken)} are not {kind} columns")
    return names


def run_suite(
    frame: pd.DataFrame,
    task: str,
    spec: list,
    labels: list[int],
    source: str | Path,
    report_dir: Path | None,
    *,
    derived: dict[str, str],
    started: float,
    extra_statistics: dict[str, Any] | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Run a suite on a prepared frame, write its result and data docs, and report.

    Shared by every table the platform validates (the beat tables, the multi-lead table).

    Args:
        frame: the table with its derived helper columns.
        task: the task named in the report.
        spec: the suite's expectations.
        labels: the valid labels.
        source: the file the table came from (named in every message).
        report_dir: where to write ``validation.json`` and ``data_docs/`` (None: nowhere).
        derived: the helper columns, recorded in the result's metadata.
        started: ``time.perf_counter()`` when validation began.
        extra_statistics: statistics of the data beside GX's own.
        raise_on_failure: raise :class:`ValidationFailed` on a failed expectation.

    Returns:
        The :class:`ValidationReport`.

    Raises:
        ValidationFailed: an expectation failed (names the file, the failed expectations
            with example rows, and the result JSON).
    """
    result = _run_gx(frame, task, spec, report_dir)
    failures = _describe_failures(result, frame, spec)
    counts = _class_counts(frame, labels)
    elapsed = time.perf_counter() - started
    statistics = {
        **_gx_statistics(result),
        **(extra_statistics or {}),
        "seconds": round(elapsed, 3),
    }
    result_path = docs_path = None
    if report_dir is not None:
        result_json = result["json"]
        result_json.setdefault("meta", {})["ecgops"] = {
            "source": str(source),
            "task": task,
            "n_rows": len(frame),
            "class_counts": {str(k): v for k, v in counts.items()},
            "failures": failures,
            "statistics": statistics,
            "derived_columns": derived,
        }
        result_path = write_json(result_json, Path(report_dir) / RESULT_FILE)
        docs_path = result["docs_index"]
    report = ValidationReport(
        source=str(source),
        task=task,
        success=bool(result["success"]),
        n_rows=len(frame),
        class_counts=counts,
        statistics=statistics,
        failures=failures,
        result_path=result_path,
        docs_path=docs_path,
    )
    if not report.success and raise_on_failure:
        raise ValidationFailed(source, failures or ["see the report"], result_path)
    return report


def validate_file(
    path: Path,
    task: str,
    cfg: Config,
    report_dir: Path | None = None,
    *,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Read a parquet beat table and validate it.

    Args:
        path: the parquet file.
        task: ``ptb`` or ``mitbih``.
        cfg: configuration.
        report_dir: where to write the GX result and data docs (``None``: nowhere).
        raise_on_failure: see :func:`validate_beats`.

    Returns:
        The :class:`ValidationReport`.

    Raises:
        DataError: the file is missing, empty, truncated or not parquet.
        ValidationFailed: an expectation failed.
    """
    df = read_beat_table(path)
    return validate_beats(df, task, cfg, path, report_dir, raise_on_failure=raise_on_failure)


def validate_task(cfg: Config, task: str) -> ValidationReport:
    """Validate ``<processed>/{task}.parquet``, reports under ``<outputs>/validation/{task}/``.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.

    Returns:
        The :class:`ValidationReport` (only on success).

    Raises:
        DataError: the table is missing or unreadable.
        ValidationFailed: an expectation failed.
    """
    return validate_file(paths.beat_table(cfg, task), task, cfg, paths.validation_dir(cfg, task))


def read_beat_table(path: Path) -> pd.DataFrame:
    """Read a parquet beat table with a clear error on a missing, empty or broken file.

    Args:
        path: the parquet file.

    Returns:
        The table.

    Raises:
        DataError: naming the file and the problem.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a file")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file (0 bytes)")
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            path, f"not a readable parquet file (truncated or corrupt?): {reason}"
        ) from exc
