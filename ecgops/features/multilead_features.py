"""Per-lead features of multi-lead beats: the single-lead feature set of each lead, side by side.

A row of the multi-lead table (``ptb12``, :mod:`ecgops.data.multilead_schema`) holds one beat
per lead (``<lead>_x0..x186``, all cut at the same R-peak). Each lead's beat goes through the
same extractor as the single-lead classical ``features`` input
(:class:`~ecgops.features.tsfeatures.FeatureExtractor`, ``features.set``: the padding
stripped, :mod:`ecgops.features.compact`), and the blocks are concatenated lead by lead with
the lead's name as prefix: ``II__value__mean``, ``V1__morph__st_level``, ...

:func:`lead_set_features` is the pure function on a table; :class:`PerLeadFeatures` is the same
as the first step of a classical pipeline (rows ``(n, n_leads * 187)`` in, features out), so
a logged multi-lead classical model computes its features at prediction time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.data.multilead_schema import lead_columns, lead_tensor
from ecgops.errors import DataError
from ecgops.features.tsfeatures import FeatureExtractor, StatelessTransformer
from ecgops.schema import BEAT_LEN

LEAD_SEPARATOR = "__"
"""Between a lead's name and its feature's name (``II__value__mean``)."""


def lead_feature_names(leads: list[str], names: list[str]) -> list[str]:
    """``<lead>__<feature>`` for each lead (lead-major) and each feature name.

    Args:
        leads: lead names, in order.
        names: one lead's feature names.

    Returns:
        The prefixed names.
    """
    return [f"{lead}{LEAD_SEPARATOR}{name}" for lead in leads for name in names]


class PerLeadFeatures(StatelessTransformer):
    """Multi-lead beats ``(n, n_leads * 187)`` in, each lead's features side by side out.

    Stateless, like the extractor it wraps: a pipeline may be fitted on precomputed features
    and still predict from raw beats.

    Args:
        extractor: the single-lead feature extractor applied to each lead.
        leads: the leads of the input rows, in order (names only: they prefix the columns).
    """

    def __init__(self, extractor: FeatureExtractor, leads: list[str]) -> None:
        self.extractor = extractor
        self.leads = leads

    def fit(self, x: Any, y: Any = None) -> PerLeadFeatures:
        """Nothing to learn; records the input width."""
        self.extractor.fit(None)
        self.n_features_in_ = len(self.leads) * BEAT_LEN
        return self

    def blocks(self, x: Any) -> list[np.ndarray]:
        """Each lead's beats ``(n, 187)`` of rows ``x``.

        Raises:
            ValueError: rows that are not ``n_leads * 187`` wide.
        """
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != len(self.leads) * BEAT_LEN:
            raise ValueError(
                f"expected rows of {len(self.leads)} lead(s) x {BEAT_LEN} samples "
                f"({', '.join(self.leads)}), got shape {arr.shape}"
            )
        return [arr[:, i * BEAT_LEN : (i + 1) * BEAT_LEN] for i in range(len(self.leads))]

    def transform(self, x: Any) -> np.ndarray:
        """Features of each lead, side by side, float64 (NaN where undefined)."""
        return np.hstack([self.extractor.transform(block) for block in self.blocks(x)])

    def frame(self, x: Any, progress: bool = False) -> pd.DataFrame:
        """:meth:`transform` as a DataFrame with the ``<lead>__<feature>`` columns."""
        parts = [self.extractor.frame(block, progress=progress) for block in self.blocks(x)]
        names = lead_feature_names(list(self.leads), list(parts[0].columns))
        values = np.hstack([p.to_numpy(dtype=np.float64) for p in parts])
        return pd.DataFrame(values, columns=names)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The ``<lead>__<feature>`` names of the output columns."""
        names = [str(n) for n in self.extractor.get_feature_names_out()]
        return np.asarray(lead_feature_names(list(self.leads), names), dtype=object)

    def fingerprint(self) -> str:
        """The extractor's fingerprint and the leads (what determines the features)."""
        return f"{self.extractor.fingerprint()}|leads={','.join(self.leads)}"


def check_leads(table: pd.DataFrame, leads: list[str], source: str | Path | None = None) -> None:
    """Refuse a table that lacks a signal column of one of ``leads``.

    Args:
        table: a multi-lead table (or some of its rows).
        leads: the leads wanted.
        source: the table's file, named in the error.

    Raises:
        DataError: the leads (and how many of their columns) the table lacks.
    """
    columns = set(table.columns)
    missing = [lead for lead in leads if not set(lead_columns([lead], BEAT_LEN)) <= columns]
    if not leads:
        missing = ["(none given)"]
    if missing:
        held = [str(c)[: -len("_x0")] for c in table.columns if str(c).endswith("_x0")]
        raise DataError(
            source,
            f"no signal columns <lead>_x0..x{BEAT_LEN - 1} for lead(s) {', '.join(missing)}; "
            f"the table holds {', '.join(held) or 'no lead'}",
        )


def lead_set_features(
    table: pd.DataFrame,
    leads: list[str],
    extractor: FeatureExtractor,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """Each lead's features of a multi-lead table, side by side (pure).

    Args:
        table: a multi-lead table (``<lead>_x0..x186`` per lead).
        leads: the leads, in the wanted order (e.g. ``multilead.lead_set(name)``).
        extractor: the single-lead extractor (``FeatureExtractor.from_config(cfg)``).
        source: the table's file, named in errors.

    Returns:
        One row per beat (same order), columns ``<lead>__<feature>`` lead by lead; a lead's
        block equals ``extractor.frame`` of that lead's beats.

    Raises:
        DataError: the table lacks a lead's columns, or has no rows.
    """
    check_leads(table, leads, source)
    if table.empty:
        raise DataError(source, "no beats to compute features of")
    x = lead_tensor(table, leads, BEAT_LEN).reshape(len(table), -1)
    return PerLeadFeatures(extractor, leads).frame(x)
