"""The RR context as a model input: which columns a model reads and how they are normalised.

A context model (classical input ``raw+rr`` / ``features+rr``, deep ``cnn+rr`` / ``rescnn+rr``)
reads each beat's RR context (``ecgops.schema.CONTEXT_COLUMNS``, seconds and ratios, computed
within its record by ``ecgops.data.rhythm.rr_context``) beside its 187 samples. The
``context.normalise`` setting makes the RR intervals patient-adaptive, always label-free:

- ``none``: the intervals in seconds, as the beat table holds them;
- ``record_mean``: every interval (``ecgops.schema.RR_COLUMNS``) divided by the mean
  ``rr_prev`` of the beat's record. The record's mean travels as one more input column,
  :data:`RECORD_SCALE_COLUMN`, computed by :func:`with_record_scale` over all the record's
  beats (the beat table's rows of the record in training and evaluation, the record's R-peaks
  in ``ecgops annotate``), so a model predicts row by row, in any chunks;
- ``window_mean``: every interval divided by the beat's own ``rr_mean`` (the long running
  window of ``data.rhythm``; causal when ``look_ahead`` is off).

The ratios are unchanged. :func:`normalise_context` is the one transformation, used by the
classical pipelines, the nets' predictor and so everywhere a model predicts (training,
evaluation, ``predict``, ``annotate``). Pure numpy/pandas, no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from ecgops.schema import CONTEXT_COLUMNS, RR_COLUMNS, signals

Normalise = Literal["none", "record_mean", "window_mean"]
NORMALISE_MODES: tuple[str, ...] = ("none", "record_mean", "window_mean")
RECORD_SCALE_COLUMN = "rr_record_mean"
"""The mean ``rr_prev`` of the beat's record (seconds), an input of ``record_mean`` models."""
NEEDS_CONTEXT_TAG = "ecgops.needs_context"
"""Run tag: ``true`` for a run whose model reads the RR context, else ``false``."""
_RR_INDEX = [CONTEXT_COLUMNS.index(c) for c in RR_COLUMNS]


def model_context_columns(normalise: str) -> list[str]:
    """The input columns a context model reads beside ``x0..x186``.

    Args:
        normalise: ``none``, ``record_mean`` or ``window_mean``.

    Returns:
        :data:`~ecgops.schema.CONTEXT_COLUMNS`, plus :data:`RECORD_SCALE_COLUMN` for
        ``record_mean``.

    Raises:
        ValueError: an unknown mode.
    """
    if normalise not in NORMALISE_MODES:
        raise ValueError(f"unknown context normalisation {normalise!r}; expected {NORMALISE_MODES}")
    extra = [RECORD_SCALE_COLUMN] if normalise == "record_mean" else []
    return list(CONTEXT_COLUMNS) + extra


def with_record_scale(frame: pd.DataFrame, records: str | None = "record") -> pd.DataFrame:
    """A copy of ``frame`` with :data:`RECORD_SCALE_COLUMN`: the mean ``rr_prev`` per record.

    Label-free: it reads ``rr_prev`` only. Give every beat of a record at once (the whole beat
    table, or all parts of a split together), so each record's mean is over all its beats.

    Args:
        frame: rows with ``rr_prev`` (a beat table, or one record's RR context).
        records: the column naming each row's record; None: all rows are one record.

    Returns:
        The frame with the column added (replaced if present).

    Raises:
        ValueError: no ``rr_prev`` column.
    """
    if "rr_prev" not in frame.columns:
        raise ValueError("the record mean RR needs the rr_prev column (RR context)")
    out = frame.copy()
    rr = out["rr_prev"].astype(np.float64)
    if records is None:
        out[RECORD_SCALE_COLUMN] = float(rr.mean()) if len(rr) else np.nan
    else:
        out[RECORD_SCALE_COLUMN] = rr.groupby(out[records], sort=False).transform("mean")
    return out


def missing_context(columns: list[str], available: pd.Index | list[str]) -> list[str]:
    """The context columns a model reads that ``available`` lacks (in the model's order)."""
    have = set(available)
    return [c for c in columns if c not in have]


def context_error(missing: list[str], source: str = "input") -> str:
    """The message for rows without (some of) a context model's columns."""
    return (
        f"{source}: this model reads the beats' RR context, but the rows lack the columns "
        f"{', '.join(missing)}. Rows in the Kaggle CSV layout (187 values) carry no context: "
        "use the morphology-only model for them (ecgops-<task>), or give beats built from "
        "beat-annotated records (`ecgops data build`, `ecgops annotate`)"
    )


def context_values(frame: pd.DataFrame, columns: list[str], source: str = "input") -> np.ndarray:
    """The model's context columns of ``frame`` as float32 (n, len(columns)).

    Args:
        frame: beats with their context columns.
        columns: the columns the model reads (:func:`model_context_columns`).
        source: how to name the rows in messages.

    Returns:
        The values, in ``columns`` order.

    Raises:
        ValueError: columns missing (naming them) or values not finite.
    """
    missing = missing_context(columns, frame.columns)
    if missing:
        raise ValueError(context_error(missing, source))
    values = frame[columns].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(f"{source}: NaN or infinite RR context in row {row}, {columns[col]}")
    return values.astype(np.float32)


def normalise_context(values: np.ndarray, normalise: str) -> np.ndarray:
    """The context as a model sees it: RR intervals made patient-adaptive (module doc).

    Args:
        values: (n, len(model_context_columns(normalise))) in that column order.
        normalise: ``none``, ``record_mean`` or ``window_mean``.

    Returns:
        float32 (n, len(CONTEXT_COLUMNS)): the intervals divided by the scale, ratios kept.

    Raises:
        ValueError: wrong width, or a scale that is not positive.
    """
    values = np.asarray(values, dtype=np.float64)
    width = len(model_context_columns(normalise))
    if values.ndim != 2 or values.shape[1] != width:
        raise ValueError(f"expected RR context of shape (n, {width}), got {values.shape}")
    out = values[:, : len(CONTEXT_COLUMNS)].copy()
    if normalise == "none":
        return out.astype(np.float32)
    if normalise == "record_mean":
        scale = values[:, len(CONTEXT_COLUMNS)]
    else:
        scale = values[:, CONTEXT_COLUMNS.index("rr_mean")]
    if not (scale > 0).all():
        raise ValueError(f"the {normalise} RR scale must be positive")
    out[:, _RR_INDEX] = out[:, _RR_INDEX] / scale[:, None]
    return out.astype(np.float32)


def model_input(frame: pd.DataFrame, columns: list[str], source: str = "input") -> np.ndarray:
    """Beats and (when ``columns``) their raw context side by side: float32 (n, 187 + c).

    Args:
        frame: a beat table.
        columns: the model's context columns (empty: morphology only).
        source: how to name the rows in messages.

    Returns:
        ``x0..x186`` then ``columns``.
    """
    x = signals(frame)
    if not columns:
        return x
    return np.hstack([x, context_values(frame, columns, source)])


def split_with_context(
    cfg: Any, task: str, parts: dict[str, pd.DataFrame], columns: list[str]
) -> dict[str, pd.DataFrame]:
    """A split ready for a context model: checked for its context, with the record means.

    The record means (:func:`with_record_scale`) are taken over all parts together, so a
    record split across parts (the beat scheme) has one mean, that of all its beats.

    Args:
        cfg: configuration (names the beat table in messages).
        task: the task.
        parts: ``train``/``val``/``test`` beat tables (``load_split``).
        columns: the model's context columns (:func:`model_context_columns`).

    Returns:
        The parts, with :data:`RECORD_SCALE_COLUMN` where ``columns`` has it.

    Raises:
        DataError: the beat table has no RR context (e.g. imported from the Kaggle CSVs).
    """
    from ecgops.errors import DataError
    from ecgops.paths import beat_table

    table = beat_table(cfg, task)
    raw = [c for c in columns if c != RECORD_SCALE_COLUMN]
    for part, frame in parts.items():
        missing = missing_context(raw, frame.columns)
        if missing:
            raise DataError(table, context_error(missing, f"the {part} part"))
        if len(frame) and not np.isfinite(frame[raw].to_numpy(np.float64)).all():
            raise DataError(table, f"the {part} part has incomplete RR context (NaN values)")
    if RECORD_SCALE_COLUMN not in columns:
        return parts
    names = list(parts)
    whole = pd.concat([parts[n].assign(_part=n) for n in names], ignore_index=True)
    whole = with_record_scale(whole)
    out = {}
    for n in names:
        rows = whole[whole["_part"] == n].drop(columns="_part")
        out[n] = rows.set_axis(parts[n].index)
    return out


ALL_CONTEXT_COLUMNS: list[str] = model_context_columns("record_mean")
"""Every context column a context model may read (what the promotion gate gives them)."""


def table_with_context(frame: pd.DataFrame) -> np.ndarray:
    """A beat table's beats beside :data:`ALL_CONTEXT_COLUMNS`, float32 (n, 187 + c).

    The record means (:func:`with_record_scale`) are computed over the table's rows of each
    record when the table does not carry them.

    Args:
        frame: a beat table with RR context and a ``record`` column.

    Returns:
        ``x0..x186`` then :data:`ALL_CONTEXT_COLUMNS`.

    Raises:
        DataError: the table has no RR context (e.g. imported from the Kaggle CSVs).
    """
    from ecgops.errors import DataError

    missing = missing_context(list(CONTEXT_COLUMNS), frame.columns)
    if missing:
        raise DataError(None, context_error(missing, "the evaluation beats"))
    if RECORD_SCALE_COLUMN not in frame.columns:
        frame = with_record_scale(frame)
    return model_input(frame, ALL_CONTEXT_COLUMNS, "the evaluation beats")
