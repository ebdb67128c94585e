"""Layout of the multi-lead table ``ptb12`` (see :mod:`ecgops.data.multilead`).

One row per beat: ``patient, record, beat, label, source, sample, time_s`` then, for each lead
of ``multilead.leads`` in order, ``<lead>_x0 .. <lead>_x{beat_len-1}`` (float32 in [0, 1]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TASK = "ptb12"
BASE_TASK = "ptb"  # labels, classes and patients of the single-lead PTB task
META_COLUMNS = ["patient", "record", "beat", "label", "source", "sample", "time_s"]


def lead_columns(leads: list[str], beat_len: int) -> list[str]:
    """``<lead>_x0 .. <lead>_x{beat_len-1}`` for each lead, lead-major.

    Args:
        leads: lead names in table order.
        beat_len: samples per beat.

    Returns:
        The signal column names.
    """
    return [f"{lead}_x{i}" for lead in leads for i in range(beat_len)]


def lead_tensor(df: pd.DataFrame, leads: list[str], beat_len: int) -> np.ndarray:
    """The beats of a multi-lead table as float32 ``(n, n_leads, beat_len)``.

    Args:
        df: the table (or some of its rows).
        leads: the leads wanted, in the wanted order (any subset of the table's).
        beat_len: samples per beat.

    Returns:
        The array, leads in the order given.
    """
    x = df[lead_columns(leads, beat_len)].to_numpy(dtype=np.float32)
    return x.reshape(len(df), len(leads), beat_len)
