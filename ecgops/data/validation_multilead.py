"""Great Expectations validation of the multi-lead table (``ptb12``) before anything trains on it.

The suite mirrors the single-lead one of :mod:`ecgops.data.validation` and runs through its
helpers (helper columns, GX run, data docs, failure messages):

- the columns are exactly ``patient, record, beat, label, source, sample, time_s`` and the
  ``<lead>_x0 .. <lead>_x186`` block of every lead of ``multilead.leads`` (12 leads present);
- every signal value is a finite number in ``[0, validation.max_abs_value]``, no nulls in the
  ids, the label, ``sample`` (an integer >= 0) or ``time_s`` (>= 0);
- labels in the PTB label set; at least ``multilead.validation.min_rows`` rows and
  ``multilead.validation.min_per_class`` rows in every class;
- per lead, zero padding only at the end (``validation.max_inner_zero_run``) and at least
  ``validation.min_beat_samples`` samples before it; every lead was cut at the same R-peak,
  so the leads' lengths before padding agree within ``validation.max_inner_zero_run`` samples
  (a lead may end on its window's minimum, an exact 0);
- no duplicated ``(source, record, beat)`` or ``(source, record, sample)`` and no two rows
  with the same values (at most ``validation.max_duplicate_fraction``).

Bad input (repeated columns, helper-column names, a missing or broken file) is a
:class:`~ecgops.errors.DataError` naming the file, as for the single-lead table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.multilead_schema import BASE_TASK, META_COLUMNS, TASK, lead_columns
from ecgops.data.validation import (
    DERIVED,
    ID_COLUMNS,
    INTEGER_TYPES,
    ValidationReport,
    _blank,
    _padding,
    _signal_checks,
    _signal_matrix,
    checked_column_names,
    label_set,
    read_beat_table,
    run_suite,
)

Spec = list[tuple[str, dict[str, Any], str]]
WHOLE_ROW = ("_length", "_inner_zero_run")  # single-lead padding checks: per lead here
MULTI_DERIVED: dict[str, str] = {
    **{k: v for k, v in DERIVED.items() if k not in WHOLE_ROW},
    "_lead_length": "samples before the trailing zero padding, shortest lead",
    "_lead_inner_zero_run": "longest run of exact zeros before the trailing padding, any lead",
    "_length_spread": "longest minus shortest lead length before the padding",
    "_signal_hash": "hash of all leads' values (equal hashes: duplicated beats)",
}


def derive_multilead_columns(df: pd.DataFrame, leads: list[str], beat_len: int) -> pd.DataFrame:
    """A copy of the table (index 0..n-1) with the helper columns of :data:`MULTI_DERIVED`.

    Args:
        df: the multi-lead table.
        leads: the leads it should hold, in order.
        beat_len: samples per beat and lead.

    Returns:
        The table with helper columns appended (signal checks over the columns present).
    """
    frame = df.reset_index(drop=True)
    derived: dict[str, Any] = {}
    present = [c for c in lead_columns(leads, beat_len) if c in frame.columns]
    if present:
        x, nonnumeric = _signal_matrix(frame, present)
        checks = _signal_checks(x, nonnumeric)
        derived.update({k: v for k, v in checks.items() if k not in WHOLE_ROW})
        if len(present) == len(leads) * beat_len:
            per_lead = x.reshape(len(frame) * len(leads), beat_len)
            length, inner = (a.reshape(len(frame), len(leads)) for a in _padding(per_lead))
            derived["_lead_length"] = length.min(axis=1)
            derived["_lead_inner_zero_run"] = inner.max(axis=1)
            derived["_length_spread"] = length.max(axis=1) - length.min(axis=1)
    ids = [c for c in ID_COLUMNS if c in frame.columns]
    if ids:
        derived["_n_blank_ids"] = sum(_blank(frame[c]) for c in ids).astype(np.int64)
    if "label" in frame.columns:
        counts = frame["label"].value_counts(dropna=False)
        derived["_class_count"] = frame["label"].map(counts).fillna(0).to_numpy(np.int64)
    return pd.concat([frame, pd.DataFrame(derived, index=frame.index)], axis=1)


def build_multilead_spec(frame: pd.DataFrame, cfg: Config, labels: list[int]) -> Spec:
    """The expectation suite of the multi-lead table as ``(GX class, kwargs, description)``.

    Args:
        frame: the table with its helper columns.
        cfg: configuration (``multilead``, ``validation``).
        labels: the label set.

    Returns:
        The expectation specifications, in reporting order.
    """
    v, mv = cfg.validation, cfg.multilead.validation
    leads = cfg.multilead.leads
    cols = set(frame.columns)
    signal = lead_columns(leads, cfg.data.beat_len)
    expected = META_COLUMNS + signal + [c for c in MULTI_DERIVED if c in cols]
    spec: Spec = [
        (
            "ExpectTableColumnsToMatchSet",
            {"column_set": expected, "exact_match": True},
            f"exactly {', '.join(META_COLUMNS)} and <lead>_x0..<lead>_x{cfg.data.beat_len - 1} "
            f"for the {len(leads)} leads {', '.join(leads)} (plus the validator's _helper columns)",
        ),
        (
            "ExpectTableRowCountToBeBetween",
            {"min_value": mv.min_rows},
            "at least multilead.validation.min_rows rows",
        ),
    ]

    def col(name: str, kind: str, desc: str, **kwargs: Any) -> None:
        if name in cols:
            spec.append((kind, {"column": name, **kwargs}, desc))

    for c in [*ID_COLUMNS, "label", "source", "sample", "time_s"]:
        col(c, "ExpectColumnValuesToNotBeNull", f"every row has a {c}")
    zero = {"min_value": 0, "max_value": 0}
    col("_n_blank_ids", "ExpectColumnValuesToBeBetween", "no empty ids", **zero)
    col("label", "ExpectColumnValuesToBeInTypeList", "labels are integers", type_list=INTEGER_TYPES)
    col("label", "ExpectColumnValuesToBeInSet", f"labels in {labels}", value_set=labels)
    col("sample", "ExpectColumnValuesToBeInTypeList", "R-peak samples are integers",
        type_list=INTEGER_TYPES)  # fmt: skip
    col("sample", "ExpectColumnValuesToBeBetween", "R-peak sample at least 0", min_value=0)
    col("time_s", "ExpectColumnValuesToBeBetween", "R-peak time at least 0 s", min_value=0)
    if mv.min_per_class > 0:
        col("label", "ExpectColumnDistinctValuesToContainSet", f"every class of {labels} present",
            value_set=labels)  # fmt: skip
        col("_class_count", "ExpectColumnValuesToBeBetween",
            "every class has at least multilead.validation.min_per_class rows",
            min_value=mv.min_per_class)  # fmt: skip
    col("_n_nonnumeric", "ExpectColumnValuesToBeBetween", "signal cells are numbers", **zero)
    col("_n_nan", "ExpectColumnValuesToBeBetween", "no NaN signal values", **zero)
    col("_n_inf", "ExpectColumnValuesToBeBetween", "no infinite signal values", **zero)
    col("_min", "ExpectColumnValuesToBeBetween", "signal values at least 0", min_value=0)
    col("_max", "ExpectColumnValuesToBeBetween", "signal values at most validation.max_abs_value",
        max_value=v.max_abs_value)  # fmt: skip
    col("_lead_inner_zero_run", "ExpectColumnValuesToBeBetween",
        "zero padding only at the end of each lead (inner zero runs at most "
        "validation.max_inner_zero_run)", min_value=0, max_value=v.max_inner_zero_run)  # fmt: skip
    col("_lead_length", "ExpectColumnValuesToBeBetween",
        "every lead at least validation.min_beat_samples samples before its padding",
        min_value=v.min_beat_samples)  # fmt: skip
    col("_length_spread", "ExpectColumnValuesToBeBetween",
        "all leads cut at the same R-peak: lengths agree within validation.max_inner_zero_run",
        min_value=0, max_value=v.max_inner_zero_run)  # fmt: skip
    for key in (["source", "record", "beat"], ["source", "record", "sample"]):
        if set(key) <= cols:
            spec.append(("ExpectCompoundColumnsToBeUnique", {"column_list": key},
                         f"no duplicated ({', '.join(key)})"))  # fmt: skip
    col("_signal_hash", "ExpectColumnValuesToBeUnique",
        "no two rows with the same values (share at most validation.max_duplicate_fraction)",
        mostly=1.0 - v.max_duplicate_fraction)  # fmt: skip
    return spec


def validate_multilead(
    df: pd.DataFrame,
    cfg: Config,
    source: str | Path,
    report_dir: Path | None = None,
    *,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate a multi-lead table with its Great Expectations suite.

    Args:
        df: the table (layout of :mod:`ecgops.data.multilead`).
        cfg: configuration.
        source: the file the table came from (named in every message).
        report_dir: where to write ``validation.json`` and ``data_docs/`` (None: nowhere).
        raise_on_failure: raise :class:`ValidationFailed` on a failed expectation (default).

    Returns:
        The :class:`~ecgops.data.validation.ValidationReport` (task ``ptb12``).

    Raises:
        DataError: repeated column names, or columns named like the helper columns.
        ValidationFailed: an expectation failed (names the file and the failures).
    """
    started = time.perf_counter()
    labels = label_set(cfg, BASE_TASK)
    names = checked_column_names(df, source, [*MULTI_DERIVED, *DERIVED], "multi-lead table")
    frame = derive_multilead_columns(
        df.set_axis(names, axis=1), cfg.multilead.leads, cfg.data.beat_len
    )
    spec = build_multilead_spec(frame, cfg, labels)
    return run_suite(
        frame,
        TASK,
        spec,
        labels,
        source,
        report_dir,
        derived=MULTI_DERIVED,
        started=started,
        raise_on_failure=raise_on_failure,
    )


def validate_multilead_file(
    path: Path, cfg: Config, report_dir: Path | None = None
) -> ValidationReport:
    """Read a parquet multi-lead table (clear errors on a missing or broken file) and validate it.

    Args:
        path: the parquet file.
        cfg: configuration.
        report_dir: where to write the GX result and data docs (None: nowhere).

    Returns:
        The report (only on success).

    Raises:
        DataError: the file is missing, empty or not parquet.
        ValidationFailed: an expectation failed.
    """
    return validate_multilead(read_beat_table(path), cfg, path, report_dir)
