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
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops import paths
from ecgops.config import Config
from ecgops.errors import DataError, ValidationFailed
from ecgops.io import atomic_path, write_json
from ecgops.schema import (
    CONTEXT_COLUMNS,
    META_COLUMNS,
    OPTIONAL_META,
    POSITION_COLUMNS,
    RATIO_COLUMNS,
    RR_COLUMNS,
    SIGNAL_COLUMNS,
)

ID_COLUMNS = ["patient", "record", "beat"]
RESULT_FILE = "validation.json"
DOCS_DIR = "data_docs"
MAX_EXAMPLES = 5
INTEGER_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
]  # fmt: skip

# Helper columns: name -> what the value of one row means (used in messages and data docs).
DERIVED: dict[str, str] = {
    "_n_nonnumeric": "signal cells that are not numbers",
    "_n_nan": "missing (NaN) signal values",
    "_n_inf": "infinite signal values",
    "_min": "smallest finite signal value",
    "_max": "largest finite signal value",
    "_length": "samples before the trailing zero padding",
    "_inner_zero_run": "longest run of exact zeros before the trailing padding",
    "_n_blank_ids": "empty patient/record/beat ids",
    "_class_count": "rows with this row's label",
    "_signal_hash": "hash of the 187 signal values (equal hashes: duplicated beats)",
}


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
    names = pd.Index([str(c) for c in df.columns])
    if names.has_duplicates:
        repeated = sorted(set(names[names.duplicated()]))
        raise DataError(source, f"repeated column names {_short(repeated)}")
    reserved = [c for c in names if c in DERIVED]
    if reserved:
        raise DataError(source, f"columns {_short(reserved)} are not beat-table columns")
    frame = derive_columns(df.set_axis(names, axis=1))
    suite_spec = build_suite_spec(frame, task, cfg, labels)
    result = _run_gx(frame, task, suite_spec, report_dir)

    failures = _describe_failures(result, frame, suite_spec)
    counts = _class_counts(frame, labels)
    elapsed = time.perf_counter() - started
    statistics = {**_gx_statistics(result), **_data_statistics(frame), "seconds": round(elapsed, 3)}

    result_path = docs_path = None
    if report_dir is not None:
        report_dir = Path(report_dir)
        result_json = result["json"]
        result_json.setdefault("meta", {})["ecgops"] = {
            "source": str(source),
            "task": task,
            "n_rows": len(frame),
            "class_counts": {str(k): v for k, v in counts.items()},
            "failures": failures,
            "statistics": statistics,
            "derived_columns": DERIVED,
        }
        result_path = write_json(result_json, report_dir / RESULT_FILE)
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


# ---- derived columns ------------------------------------------------------------------------


def derive_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the table (row index 0..n-1) with the helper columns of :data:`DERIVED`.

    Helper columns that need a missing meta column are left out; with signal columns missing
    the signal checks use the ones present (the column-set expectation reports the rest).

    Args:
        df: the beat table.

    Returns:
        The table with helper columns appended.
    """
    frame = df.reset_index(drop=True)
    derived: dict[str, Any] = {}
    present = [c for c in SIGNAL_COLUMNS if c in frame.columns]
    if present:
        x, nonnumeric = _signal_matrix(frame, present)
        derived.update(_signal_checks(x, nonnumeric))
    ids = [c for c in ID_COLUMNS if c in frame.columns]
    if ids:
        derived["_n_blank_ids"] = sum(_blank(frame[c]) for c in ids).astype(np.int64)
    if "label" in frame.columns:
        counts = frame["label"].value_counts(dropna=False)
        derived["_class_count"] = frame["label"].map(counts).fillna(0).to_numpy(np.int64)
    extra = pd.DataFrame(derived, index=frame.index)
    return pd.concat([frame, extra], axis=1)


def _signal_matrix(frame: pd.DataFrame, present: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Signal values as float64 (non-numbers as NaN) and a mask of non-numeric cells."""
    numeric = [c for c in present if _is_real_numeric(frame[c])]
    x = np.full((len(frame), len(present)), np.nan)
    nonnumeric = np.zeros(x.shape, dtype=bool)
    if len(numeric) == len(present):
        x[:] = frame[present].to_numpy(dtype=np.float64, na_value=np.nan)
        return x, nonnumeric
    for j, col in enumerate(present):
        s = frame[col]
        if col in numeric:
            x[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            cells = np.array(s.to_numpy(dtype=object), dtype=object)
            bad = s.notna().to_numpy() & ~np.array([_is_number(v) for v in cells], dtype=bool)
            nonnumeric[:, j] = bad
            cells[bad] = np.nan
            x[:, j] = pd.to_numeric(pd.Series(cells), errors="coerce").to_numpy(np.float64)
    return x, nonnumeric


def _signal_checks(x: np.ndarray, nonnumeric: np.ndarray) -> dict[str, np.ndarray]:
    n, width = x.shape
    finite = np.isfinite(x)
    if width and finite.all():  # the common case: a clean table, one pass each
        zeros = np.zeros(n, dtype=np.int64)
        out = {"_n_nonnumeric": zeros, "_n_nan": zeros, "_n_inf": zeros}
        out["_min"], out["_max"] = x.min(axis=1), x.max(axis=1)
    else:
        nan = np.isnan(x)
        any_finite = finite.any(axis=1)
        lo = np.where(finite, x, np.inf).min(axis=1) if width else np.full(n, np.nan)
        hi = np.where(finite, x, -np.inf).max(axis=1) if width else np.full(n, np.nan)
        out = {
            "_n_nonnumeric": nonnumeric.sum(axis=1).astype(np.int64),
            "_n_nan": (nan & ~nonnumeric).sum(axis=1).astype(np.int64),
            "_n_inf": (~finite & ~nan).sum(axis=1).astype(np.int64),
            "_min": np.where(any_finite, lo, np.nan),
            "_max": np.where(any_finite, hi, np.nan),
        }
    out["_length"], out["_inner_zero_run"] = _padding(x)
    out["_signal_hash"] = _row_hashes(x)
    return out


def _row_hashes(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's values (equal rows, equal hashes); stable across runs."""
    rows = np.ascontiguousarray(x, dtype=np.float64) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
    return np.array(
        [int.from_bytes(blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in rows],
        dtype=np.uint64,
    )


def _padding(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: samples before the trailing exact-zero run, and the longest zero run before it."""
    zero = x == 0
    nonzero = ~zero
    width = x.shape[1]
    length = np.where(nonzero.any(axis=1), width - np.argmax(nonzero[:, ::-1], axis=1), 0)
    inner = zero & (np.arange(width)[None, :] < length[:, None])
    longest = np.zeros(len(x), dtype=np.int64)
    rows = np.flatnonzero(inner.any(axis=1))  # few rows touch zero inside the beat
    if len(rows):
        sub = inner[rows]
        run = np.zeros(len(rows), dtype=np.int64)
        best = np.zeros(len(rows), dtype=np.int64)
        for j in range(width):
            run = np.where(sub[:, j], run + 1, 0)
            np.maximum(best, run, out=best)
        longest[rows] = best
    return length.astype(np.int64), longest


def _blank(s: pd.Series) -> np.ndarray:
    """True where an id is an empty or whitespace-only string."""
    if pd.api.types.is_numeric_dtype(s):
        return np.zeros(len(s), dtype=np.int64)
    text = s.astype("string").str.strip()
    return (text == "").fillna(False).to_numpy(dtype=np.int64)


def _is_real_numeric(s: pd.Series) -> bool:
    dtype = s.dtype
    return (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


# ---- the suite ------------------------------------------------------------------------------


def build_suite_spec(
    frame: pd.DataFrame, task: str, cfg: Config, labels: list[int]
) -> list[tuple[str, dict[str, Any], str]]:
    """The task's expectations as ``(GX class name, kwargs, description)`` triples.

    Expectations on columns the table lacks are left out: the column-set expectation reports
    them.

    Args:
        frame: the table with its helper columns (see :func:`derive_columns`).
        task: ``ptb`` or ``mitbih``.
        cfg: configuration (``validation`` section).
        labels: the task's label set.

    Returns:
        The list of expectation specifications, in the order they are reported.
    """
    v = cfg.validation
    cols = set(frame.columns)
    context = POSITION_COLUMNS + CONTEXT_COLUMNS
    expected_cols = (
        META_COLUMNS
        + [c for c in OPTIONAL_META if c in cols]
        + (context if cols & set(context) else [])
        + SIGNAL_COLUMNS
        + [c for c in DERIVED if c in cols]
    )
    spec: list[tuple[str, dict[str, Any], str]] = [
        (
            "ExpectTableColumnsToMatchSet",
            {"column_set": expected_cols, "exact_match": True},
            "exactly the beat-table columns: meta + x0..x186, optionally "
            f"{', '.join(OPTIONAL_META)} and all of the R-peak/RR context columns "
            "(the validator's _helper columns are added)",
        ),
        (
            "ExpectTableRowCountToBeBetween",
            {"min_value": v.min_rows.get(task, 0)},
            f"at least validation.min_rows[{task}] rows",
        ),
    ]

    def col(name: str, kind: str, desc: str, **kwargs: Any) -> None:
        if name in cols:
            spec.append((kind, {"column": name, **kwargs}, desc))

    for c in ID_COLUMNS:
        col(c, "ExpectColumnValuesToNotBeNull", f"every row has a {c} id")
    col("_n_blank_ids", "ExpectColumnValuesToBeBetween", "no empty ids", min_value=0, max_value=0)
    col("label", "ExpectColumnValuesToNotBeNull", "every row has a label")
    col("label", "ExpectColumnValuesToBeInTypeList", "labels are integers", type_list=INTEGER_TYPES)
    col("label", "ExpectColumnValuesToBeInSet", f"labels in {labels}", value_set=labels)
    min_class = v.min_per_class.get(task, 0)
    if min_class > 0:
        col(
            "label",
            "ExpectColumnDistinctValuesToContainSet",
            f"every class of {labels} present",
            value_set=labels,
        )
        col(
            "_class_count",
            "ExpectColumnValuesToBeBetween",
            f"every class has at least validation.min_per_class[{task}] rows",
            min_value=min_class,
        )
    zero = {"min_value": 0, "max_value": 0}
    col("_n_nonnumeric", "ExpectColumnValuesToBeBetween", "signal cells are numbers", **zero)
    col("_n_nan", "ExpectColumnValuesToBeBetween", "no NaN signal values", **zero)
    col("_n_inf", "ExpectColumnValuesToBeBetween", "no infinite signal values", **zero)
    col("_min", "ExpectColumnValuesToBeBetween", "signal values at least 0", min_value=0)
    col(
        "_max",
        "ExpectColumnValuesToBeBetween",
        "signal values at most validation.max_abs_value",
        max_value=v.max_abs_value,
    )
    col(
        "_inner_zero_run",
        "ExpectColumnValuesToBeBetween",
        "zero padding only at the end (zero runs inside the beat at most "
        "validation.max_inner_zero_run samples long)",
        min_value=0,
        max_value=v.max_inner_zero_run,
    )
    col(
        "_length",
        "ExpectColumnValuesToBeBetween",
        "beat (before its padding) at least validation.min_beat_samples samples long",
        min_value=v.min_beat_samples,
    )
    key = [c for c in ("source", "record", "beat") if c in cols]
    if "record" in cols and "beat" in cols:
        spec.append(
            (
                "ExpectCompoundColumnsToBeUnique",
                {"column_list": key},
                f"no duplicated ({', '.join(key)})",
            )
        )
    col(
        "_signal_hash",
        "ExpectColumnValuesToBeUnique",
        "no two rows with the same 187 values (share at most validation.max_duplicate_fraction)",
        mostly=1.0 - v.max_duplicate_fraction,
    )
    spec += context_spec(cols, cfg)
    return spec


def context_spec(cols: set[str], cfg: Config) -> list[tuple[str, dict[str, Any], str]]:
    """Expectations on the R-peak position and RR context columns that are present.

    Args:
        cols: the table's columns.
        cfg: configuration (``data.rhythm.valid_rr_s``, ``data.rhythm.valid_ratio``).

    Returns:
        ``(GX class name, kwargs, description)`` triples (none for a context-less table).
    """
    rhythm = cfg.data.rhythm
    rr_lo, rr_hi = rhythm.valid_rr_s
    ratio_lo, ratio_hi = rhythm.valid_ratio
    ranges: dict[str, tuple[dict[str, Any], str]] = {
        "sample": ({"min_value": 0}, "R-peak sample at least 0"),
        "time_s": ({"min_value": 0}, "R-peak time at least 0 s"),
        **{
            c: (
                {"min_value": rr_lo, "max_value": rr_hi},
                f"{c} within data.rhythm.valid_rr_s [{rr_lo}, {rr_hi}] s",
            )
            for c in RR_COLUMNS
        },
        **{
            c: (
                {"min_value": ratio_lo, "max_value": ratio_hi},
                f"{c} within data.rhythm.valid_ratio [{ratio_lo}, {ratio_hi}]",
            )
            for c in RATIO_COLUMNS
        },
    }
    spec: list[tuple[str, dict[str, Any], str]] = []
    for c, (bounds, desc) in ranges.items():
        if c not in cols:
            continue
        spec.append(("ExpectColumnValuesToNotBeNull", {"column": c}, f"every row has a {c}"))
        if c == "sample":
            spec.append(
                (
                    "ExpectColumnValuesToBeInTypeList",
                    {"column": c, "type_list": INTEGER_TYPES},
                    "R-peak samples are integers",
                )
            )
        spec.append(("ExpectColumnValuesToBeBetween", {"column": c, **bounds}, desc))
    return spec


# ---- running GX -----------------------------------------------------------------------------


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _run_gx(
    frame: pd.DataFrame,
    task: str,
    spec: list[tuple[str, dict[str, Any], str]],
    report_dir: Path | None,
) -> dict[str, Any]:
    """Run the suite on the frame in an ephemeral GX context; build data docs if asked."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(f"{task}-beats").add_dataframe_asset(task)
    batch = asset.add_batch_definition_whole_dataframe("table")
    suite = gx.ExpectationSuite(name=f"ecgops-{task}")
    for kind, kwargs, description in spec:
        suite.add_expectation(getattr(gx.expectations, kind)(**kwargs, description=description))
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate-{task}", data=batch, suite=suite)
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}

    with _docs_site(context, report_dir) as site:
        actions = (
            [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site])] if site else []
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"checkpoint-{task}",
                validation_definitions=[definition],
                actions=actions,
                result_format=result_format,
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frame})
    validation = next(iter(run.run_results.values()))
    docs_index = Path(report_dir) / DOCS_DIR / "index.html" if report_dir is not None else None
    return {
        "success": bool(validation.success),
        "json": validation.to_json_dict(),
        "docs_index": docs_index,
    }


@contextlib.contextmanager
def _docs_site(context: Any, report_dir: Path | None) -> Iterator[str | None]:
    """A local data docs site built in a temporary folder, moved to ``report_dir/data_docs``."""
    if report_dir is None:
        yield None
        return
    with atomic_path(Path(report_dir) / DOCS_DIR, suffix=".tmp") as tmp:
        context.add_data_docs_site(
            "ecgops",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(tmp),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        yield "ecgops"


# ---- reporting ------------------------------------------------------------------------------


def _class_counts(frame: pd.DataFrame, labels: list[int]) -> dict[int, int]:
    if "label" not in frame.columns:
        return dict.fromkeys(labels, 0)
    counts = frame["label"].value_counts()
    return {lab: int(counts.get(lab, 0)) for lab in labels}


def _gx_statistics(result: dict[str, Any]) -> dict[str, Any]:
    stats = result["json"].get("statistics", {})
    return {
        "evaluated_expectations": stats.get("evaluated_expectations"),
        "successful_expectations": stats.get("successful_expectations"),
        "unsuccessful_expectations": stats.get("unsuccessful_expectations"),
    }


def _data_statistics(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "_length" in frame.columns and len(frame):
        length = frame["_length"]
        out["beat_length"] = {
            "min": int(length.min()),
            "median": float(length.median()),
            "max": int(length.max()),
        }
        inner = frame["_inner_zero_run"]
        out["rows_with_inner_zeros"] = int((inner > 0).sum())
        out["max_inner_zero_run"] = int(inner.max())
    if "_signal_hash" in frame.columns:
        out["duplicated_signal_rows"] = int(frame["_signal_hash"].duplicated(keep=False).sum())
    if "record" in frame.columns and "beat" in frame.columns:
        key = [c for c in ("source", "record", "beat") if c in frame.columns]
        out["duplicated_id_rows"] = int(frame.duplicated(key, keep=False).sum())
    return out


def _describe_failures(
    result: dict[str, Any], frame: pd.DataFrame, spec: list[tuple[str, dict[str, Any], str]]
) -> list[str]:
    """One readable line per failed expectation, with up to MAX_EXAMPLES example rows."""
    descriptions = [d for _, _, d in spec]
    failures = []
    for i, item in enumerate(result["json"].get("results", [])):
        if item.get("success"):
            continue
        config = item.get("expectation_config", {})
        kwargs = config.get("kwargs", {})
        desc = config.get("description") or (descriptions[i] if i < len(descriptions) else "")
        name = _expectation_name(config.get("type", "?"), kwargs)
        failures.append(f"{name} [{desc}]: {_detail(item, kwargs, frame)}")
    return failures


def _expectation_name(kind: str, kwargs: dict[str, Any]) -> str:
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{kind}({target})" if target else kind


def _detail(item: dict[str, Any], kwargs: dict[str, Any], frame: pd.DataFrame) -> str:
    exc = item.get("exception_info") or {}
    if exc.get("raised_exception"):
        return f"could not be evaluated: {exc.get('exception_message')}"
    res = item.get("result") or {}
    details = res.get("details") or {}
    if "mismatched" in details:
        mism = details["mismatched"] or {}
        parts = []
        if mism.get("missing"):
            parts.append(f"missing columns {_short(sorted(mism['missing']))}")
        if mism.get("unexpected"):
            parts.append(f"unknown columns {_short(sorted(mism['unexpected']))}")
        return "; ".join(parts) or f"observed {_short(res.get('observed_value'))}"
    column = kwargs.get("column")
    if "unexpected_count" in res:
        n = res.get("element_count", len(frame))
        head = f"{res['unexpected_count']} of {n} rows ({res.get('unexpected_percent', 0):.3g}%)"
        if column == "label" and "partial_unexpected_counts" in res and "value_set" in kwargs:
            observed = {d.get("value") for d in res["partial_unexpected_counts"]}
            head += f", unexpected labels {_short(sorted(observed, key=str))}"
        if column == "_n_nonnumeric":
            bad = [c for c in SIGNAL_COLUMNS if c in frame and not _is_real_numeric(frame[c])]
            head += f", non-numeric columns {_short([f'{c} ({frame[c].dtype})' for c in bad])}"
        examples = _examples(res, kwargs, frame)
        return f"{head}; e.g. {examples}" if examples else head
    if "partial_missing_list" in res:
        return f"classes without rows: {_short(res['partial_missing_list'])}"
    observed = res.get("observed_value")
    return f"observed {_short(observed)}"


def _examples(res: dict[str, Any], kwargs: dict[str, Any], frame: pd.DataFrame) -> str:
    rows = res.get("partial_unexpected_index_list") or []
    values = res.get("partial_unexpected_list") or []
    column = kwargs.get("column")
    out = []
    for k, entry in enumerate(rows[:MAX_EXAMPLES]):
        row = entry if isinstance(entry, int) else _first_int(entry)
        if row is None or row >= len(frame):
            continue
        value = values[k] if k < len(values) else None
        out.append(f"row {row}{_ids(frame, row)}: {_row_value(frame, row, column, value)}")
    return "; ".join(out)


def _first_int(entry: Any) -> int | None:
    if isinstance(entry, dict):
        for v in entry.values():
            if isinstance(v, int):
                return v
    return None


def _ids(frame: pd.DataFrame, row: int) -> str:
    parts = [f"{c} {frame.at[row, c]!s}" for c in ("record", "beat") if c in frame.columns]
    return f" ({', '.join(parts)})" if parts else ""


def _row_value(frame: pd.DataFrame, row: int, column: str | None, value: Any) -> str:
    """Explain one unexpected row in terms of the original columns."""
    present = [c for c in SIGNAL_COLUMNS if c in frame.columns]
    if column in {"_min", "_max", "_n_nan", "_n_inf", "_n_nonnumeric"} and present:
        x, nonnum = _signal_matrix(frame.iloc[[row]], present)
        x, nonnum = x[0], nonnum[0]
        if column == "_min":
            j = int(np.nanargmin(np.where(np.isfinite(x), x, np.nan)))
            return f"{present[j]} = {x[j]:.6g}"
        if column == "_max":
            j = int(np.nanargmax(np.where(np.isfinite(x), x, np.nan)))
            return f"{present[j]} = {x[j]:.6g}"
        bad = {
            "_n_nan": np.isnan(x) & ~nonnum,
            "_n_inf": np.isinf(x),
            "_n_nonnumeric": nonnum,
        }[column]
        cols = [present[j] for j in np.flatnonzero(bad)]
        shown = ", ".join(f"{c} = {_fmt(frame.at[row, c])}" for c in cols[:3])
        return f"{value} cells ({shown}{', ...' if len(cols) > 3 else ''})"
    if column == "_inner_zero_run":
        return f"{value} zeros in a row inside the beat ({_zero_runs(frame, row, present)})"
    if column == "_length":
        return f"{value} samples before the padding"
    if column == "_class_count":
        return f"label {_fmt(frame.at[row, 'label'])} has {value} rows"
    if column == "_signal_hash":
        same = frame.index[frame["_signal_hash"] == frame.at[row, "_signal_hash"]].tolist()
        others = [r for r in same if r != row][:3]
        return f"same 187 values as row(s) {others}"
    if isinstance(value, dict):
        return "key " + ", ".join(f"{k} {v}" for k, v in value.items()) + " used twice or more"
    if column == "_n_blank_ids":
        blank = [c for c in ID_COLUMNS if c in frame.columns and _blank(frame[c].iloc[[row]])[0]]
        return f"empty {', '.join(blank)}"
    return _fmt(value)


def _fmt(value: Any) -> str:
    """A value as a reader expects it (``nan``, ``1.5``, ``'abc'``), not numpy's repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _zero_runs(frame: pd.DataFrame, row: int, present: list[str]) -> str:
    x = frame.loc[row, present].to_numpy(dtype=np.float64)
    length, _ = _padding(x[None, :])
    zero = np.flatnonzero(x[: int(length[0])] == 0)
    runs: list[tuple[int, int]] = []
    for j in zero:
        if runs and runs[-1][1] == j - 1:
            runs[-1] = (runs[-1][0], int(j))
        else:
            runs.append((int(j), int(j)))
    longest = max(runs, key=lambda r: r[1] - r[0])
    return f"x{longest[0]}..x{longest[1]} zero, beat ends at x{int(length[0]) - 1}"


def _short(values: Any, limit: int = 8) -> str:
    if not isinstance(values, list | tuple):
        return repr(values)
    shown = ", ".join(map(str, values[:limit]))
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{shown}{more}]"
