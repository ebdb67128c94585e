"""The expectation suite of a beat table, as ``(GX class name, kwargs, description)`` triples.

What the suite checks is listed in :mod:`ecgops.data.validation`; this module only builds the
specification (plain data, no Great Expectations import), so it can be read and tested without
GX. :mod:`ecgops.data.validation_gx` turns it into a GX suite and runs it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ecgops.config import Config, ValidationConfig
from ecgops.data.validation_columns import DERIVED, ID_COLUMNS
from ecgops.schema import (
    CONTEXT_COLUMNS,
    META_COLUMNS,
    OPTIONAL_META,
    POSITION_COLUMNS,
    RATIO_COLUMNS,
    RR_COLUMNS,
    SIGNAL_COLUMNS,
)

Spec = list[tuple[str, dict[str, Any], str]]
INTEGER_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
]  # fmt: skip


def build_suite_spec(frame: pd.DataFrame, task: str, cfg: Config, labels: list[int]) -> Spec:
    """The task's expectations as ``(GX class name, kwargs, description)`` triples.

    Expectations on columns the table lacks are left out: the column-set expectation reports
    them.

    Args:
        frame: the table with its helper columns (see
            :func:`~ecgops.data.validation_columns.derive_columns`).
        task: ``ptb`` or ``mitbih``.
        cfg: configuration (``validation`` section).
        labels: the task's label set.

    Returns:
        The list of expectation specifications, in the order they are reported.
    """
    v = cfg.validation
    cols = set(frame.columns)
    return (
        _table_spec(cols, task, v)
        + _label_spec(cols, task, v, labels)
        + _signal_spec(cols, v)
        + _duplicate_spec(cols, v)
        + context_spec(cols, cfg)
    )


def _column(cols: set[str], name: str, kind: str, desc: str, **kwargs: Any) -> Spec:
    """One expectation on column ``name``, or none when the table lacks it."""
    return [(kind, {"column": name, **kwargs}, desc)] if name in cols else []


def _table_spec(cols: set[str], task: str, v: ValidationConfig) -> Spec:
    """The column set (exactly the beat-table columns) and the row count."""
    context = POSITION_COLUMNS + CONTEXT_COLUMNS
    expected_cols = (
        META_COLUMNS
        + [c for c in OPTIONAL_META if c in cols]
        + (context if cols & set(context) else [])
        + SIGNAL_COLUMNS
        + [c for c in DERIVED if c in cols]
    )
    return [
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


def _label_spec(cols: set[str], task: str, v: ValidationConfig, labels: list[int]) -> Spec:
    """Ids present and not blank; labels present, integer, in the label set; class minima."""
    spec: Spec = []
    for c in ID_COLUMNS:
        spec += _column(cols, c, "ExpectColumnValuesToNotBeNull", f"every row has a {c} id")
    spec += _column(
        cols,
        "_n_blank_ids",
        "ExpectColumnValuesToBeBetween",
        "no empty ids",
        min_value=0,
        max_value=0,
    )
    spec += _column(cols, "label", "ExpectColumnValuesToNotBeNull", "every row has a label")
    spec += _column(
        cols,
        "label",
        "ExpectColumnValuesToBeInTypeList",
        "labels are integers",
        type_list=INTEGER_TYPES,
    )
    spec += _column(
        cols, "label", "ExpectColumnValuesToBeInSet", f"labels in {labels}", value_set=labels
    )
    min_class = v.min_per_class.get(task, 0)
    if min_class > 0:
        spec += _column(
            cols,
            "label",
            "ExpectColumnDistinctValuesToContainSet",
            f"every class of {labels} present",
            value_set=labels,
        )
        spec += _column(
            cols,
            "_class_count",
            "ExpectColumnValuesToBeBetween",
            f"every class has at least validation.min_per_class[{task}] rows",
            min_value=min_class,
        )
    return spec


def _signal_spec(cols: set[str], v: ValidationConfig) -> Spec:
    """Numbers, no NaN/inf, values within range, padding only at the end, beat length."""
    between = "ExpectColumnValuesToBeBetween"
    zero = {"min_value": 0, "max_value": 0}
    return [
        *_column(cols, "_n_nonnumeric", between, "signal cells are numbers", **zero),
        *_column(cols, "_n_nan", between, "no NaN signal values", **zero),
        *_column(cols, "_n_inf", between, "no infinite signal values", **zero),
        *_column(cols, "_min", between, "signal values at least 0", min_value=0),
        *_column(
            cols,
            "_max",
            between,
            "signal values at most validation.max_abs_value",
            max_value=v.max_abs_value,
        ),
        *_column(
            cols,
            "_inner_zero_run",
            between,
            "zero padding only at the end (zero runs inside the beat at most "
            "validation.max_inner_zero_run samples long)",
            min_value=0,
            max_value=v.max_inner_zero_run,
        ),
        *_column(
            cols,
            "_length",
            between,
            "beat (before its padding) at least validation.min_beat_samples samples long",
            min_value=v.min_beat_samples,
        ),
    ]


def _duplicate_spec(cols: set[str], v: ValidationConfig) -> Spec:
    """No duplicated ``(source, record, beat)`` key; few rows with the same 187 values."""
    spec: Spec = []
    key = [c for c in ("source", "record", "beat") if c in cols]
    if "record" in cols and "beat" in cols:
        spec.append(
            (
                "ExpectCompoundColumnsToBeUnique",
                {"column_list": key},
                f"no duplicated ({', '.join(key)})",
            )
        )
    spec += _column(
        cols,
        "_signal_hash",
        "ExpectColumnValuesToBeUnique",
        "no two rows with the same 187 values (share at most validation.max_duplicate_fraction)",
        mostly=1.0 - v.max_duplicate_fraction,
    )
    return spec


def context_spec(cols: set[str], cfg: Config) -> Spec:
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
    spec: Spec = []
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
