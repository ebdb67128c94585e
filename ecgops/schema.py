"""The one table of beats that flows through every stage.

A beat table has metadata columns ``patient``, ``record``, ``beat``, ``label``
(plus optional ``source``) and the signal columns ``x0`` .. ``x186``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BEAT_LEN = 187
SIGNAL_COLUMNS: list[str] = [f"x{i}" for i in range(BEAT_LEN)]
META_COLUMNS: list[str] = ["patient", "record", "beat", "label"]
OPTIONAL_META: list[str] = ["source", "kaggle_split"]
BEAT_COLUMNS: list[str] = META_COLUMNS + SIGNAL_COLUMNS


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
