"""The one table of beats that flows through every stage.

A beat table has metadata columns ``patient``, ``record``, ``beat``, ``label``
(plus optional ``source``) and the signal columns ``x0`` .. ``x186``.

Tables built from annotated records (MIT-BIH) also carry each beat's R-peak position
(:data:`POSITION_COLUMNS`: ``sample`` at the record's own rate, ``time_s``) and its RR context
within the record (:data:`CONTEXT_COLUMNS`, seconds or ratios, see ``ecgops.data.rhythm``).
Kaggle-imported tables have neither: :func:`has_context` tells them apart. Code that needs the
beat values selects :data:`SIGNAL_COLUMNS` by name, never "every non-meta column".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BEAT_LEN = 187
SIGNAL_COLUMNS: list[str] = [f"x{i}" for i in range(BEAT_LEN)]
META_COLUMNS: list[str] = ["patient", "record", "beat", "label"]
OPTIONAL_META: list[str] = ["source", "kaggle_split"]
BEAT_COLUMNS: list[str] = META_COLUMNS + SIGNAL_COLUMNS
POSITION_COLUMNS: list[str] = ["sample", "time_s"]
RR_COLUMNS: list[str] = ["rr_prev", "rr_next", "rr_local", "rr_mean"]
RATIO_COLUMNS: list[str] = [
    "rr_prev_ratio",  # rr_prev / rr_local
    "rr_next_ratio",  # rr_next / rr_local
    "rr_prev_next_ratio",  # rr_prev / rr_next
    "rr_prev_mean_ratio",  # rr_prev / rr_mean
    "rr_local_mean_ratio",  # rr_local / rr_mean
]
CONTEXT_COLUMNS: list[str] = RR_COLUMNS + RATIO_COLUMNS


def signals(df: pd.DataFrame) -> np.ndarray:
    """The beats as a float32 array of shape (n, 187)."""
    return df[SIGNAL_COLUMNS].to_numpy(dtype=np.float32)


def labels(df: pd.DataFrame) -> np.ndarray:
    """The labels as an int64 array of shape (n,)."""
    return df["label"].to_numpy(dtype=np.int64)


def true_lengths(x: np.ndarray) -> np.ndarray:
    """Length of each beat without its trailing zero padding (at least 1)."""
    nonzero = x != 0
    last = x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 1).astype(np.int64)


def padding_mask(x: np.ndarray) -> np.ndarray:
    """Boolean mask, True where a sample is trailing zero padding."""
    lengths = true_lengths(x)
    return np.arange(x.shape[1])[None, :] >= lengths[:, None]


def has_context(frame: pd.DataFrame) -> bool:
    """Whether a beat table carries RR context: every :data:`CONTEXT_COLUMNS` column, no NaN.

    Args:
        frame: a beat table (or model input) with named columns.

    Returns:
        True when all context columns are present and complete (a Kaggle table: False).
    """
    if not set(CONTEXT_COLUMNS).issubset(frame.columns):
        return False
    return bool(frame[CONTEXT_COLUMNS].notna().to_numpy().all())


def context(frame: pd.DataFrame) -> np.ndarray:
    """The RR context as a float32 array of shape (n, len(CONTEXT_COLUMNS)).

    Args:
        frame: a beat table with the context columns.

    Returns:
        The context values, in :data:`CONTEXT_COLUMNS` order.

    Raises:
        ValueError: context columns missing or incomplete (e.g. Kaggle rows), naming them.
    """
    missing = [c for c in CONTEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"beats without RR context (missing {', '.join(missing)}): these rows come from a "
            "context-less layout such as the Kaggle CSVs; build the table from annotated "
            "records (`ecgops data build`) or use a morphology-only model"
        )
    values = frame[CONTEXT_COLUMNS].to_numpy(dtype=np.float32)
    if np.isnan(values).any():
        raise ValueError("beats with incomplete RR context (NaN in the context columns)")
    return values
