"""Helper columns of beat-table validation: row-wise checks computed with numpy.

Great Expectations has no built-in expectation for "no NaN in this row of 187 values" or "zero
padding only at the end", so :func:`derive_columns` computes each row-wise check into a helper
column (``_n_nan``, ``_max``, ``_inner_zero_run``, ... see :data:`DERIVED`) on a copy of the
table; the suite (:mod:`ecgops.data.validation_suite`) checks them with standard expectations.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import numpy as np
import pandas as pd

from ecgops.schema import SIGNAL_COLUMNS

ID_COLUMNS = ["patient", "record", "beat"]

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
