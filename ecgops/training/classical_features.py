"""Cached features for the classical feature pipelines, and fitting/predicting with them.

:class:`FeatureLookup` serves the features of any subset of a task's beats from the DVC stage's
feature table (``data/features/{task}.parquet``) when it was built with the same settings, and
computes the rest; :func:`fit_with_lookup` / :func:`predict_with_lookup` run a pipeline with the
feature step replaced by the lookup (the timed test predictions run the full pipeline instead).
Used by :mod:`ecgops.training.classical` and :mod:`ecgops.training.multilead_classical`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.features.tsfeatures import FeatureExtractor, load_cached_features
from ecgops.models import split_context
from ecgops.models.classical import ContextFeatures, head_and_tail, predict_proba_full
from ecgops.paths import beat_table
from ecgops.schema import BEAT_LEN, SIGNAL_COLUMNS, signals

log = logging.getLogger(__name__)


def _row_keys(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each beat's float32 samples."""
    frame = pd.DataFrame(np.ascontiguousarray(x, dtype=np.float32))
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


class FeatureLookup:
    """Features of beats, from the task's cached feature table where it matches.

    Beats are matched to the cached table by content (a 64-bit hash of the samples, then an
    exact comparison), so any subset or fold of the task's beats is served, whatever order
    ``load_split`` or ``iter_patient_folds`` returns; identical beats share their features.
    Beats not in the cache, or a cache built with other settings, are computed by the
    extractor.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        extractor: the pipeline's feature extractor.
    """

    def __init__(self, cfg: Config, task: str, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self._table: np.ndarray | None = None
        self._signals: np.ndarray | None = None
        self._index: pd.Series | None = None
        cached = load_cached_features(cfg, task, extractor)
        if cached is None:
            return
        source = beat_table(cfg, task)
        beats = signals(pd.read_parquet(source, columns=SIGNAL_COLUMNS))
        if len(beats) != len(cached):
            log.info(
                "feature table has %d rows, beat table %d: recomputing", len(cached), len(beats)
            )
            return
        self._set(beats, cached.to_numpy(dtype=np.float64))

    @classmethod
    def from_arrays(
        cls, extractor: FeatureExtractor, beats: np.ndarray, features: np.ndarray
    ) -> FeatureLookup:
        """A lookup over features computed in memory (``features[i]`` belongs to ``beats[i]``)."""
        lookup = cls.__new__(cls)
        lookup.extractor = extractor
        lookup._set(np.asarray(beats, dtype=np.float32), np.asarray(features, dtype=np.float64))
        return lookup

    def _set(self, beats: np.ndarray, table: np.ndarray) -> None:
        self._signals = beats
        self._table = table
        keys = _row_keys(beats)
        index = pd.Series(np.arange(len(keys)), index=keys)
        self._index = index[~index.index.duplicated(keep="first")]

    @property
    def cached(self) -> bool:
        """Whether a matching feature table was found."""
        return self._table is not None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Feature matrix of beats ``x`` (n, 187), in the extractor's column order."""
        if self._table is None or self._index is None or self._signals is None:
            return self.extractor.transform(x)
        rows = self._index.reindex(_row_keys(x)).to_numpy()
        found = ~np.isnan(rows)
        out = np.empty((len(x), self._table.shape[1]))
        if found.any():
            idx = rows[found].astype(np.int64)
            same = np.array_equal(self._signals[idx], np.asarray(x, dtype=np.float32)[found])
            if not same:  # a hash collision: trust nothing from the cache
                return self.extractor.transform(x)
            out[found] = self._table[idx]
        if (~found).any():
            out[~found] = self.extractor.transform(np.asarray(x)[~found])
        return out


def _head_features(head: Any, lookup: FeatureLookup, x: np.ndarray) -> np.ndarray:
    """What the pipeline's feature step gives for ``x``, with the beats' features looked up.

    ``x`` is raw beats (n, 187), or beats with their RR context (n, 187 + c) for a
    :class:`~ecgops.models.classical.ContextFeatures` step (features beside the context).
    """
    step = head.steps[0][1]
    if isinstance(step, ContextFeatures):
        return step.combine(lookup(np.asarray(x)[:, :BEAT_LEN]), x)
    return lookup(x)


def fit_with_lookup(
    pipeline: Any,
    x: np.ndarray,
    y: np.ndarray,
    lookup: FeatureLookup | None,
    groups: np.ndarray | None = None,
) -> None:
    """Fit a pipeline on raw beats, using cached features for the extractor step if given
    (``groups``: patients / records for a grouped LR grid search)."""
    head, tail = head_and_tail(pipeline)
    params = {} if groups is None else {"clf__groups": groups}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
        if head is not None and lookup is not None:
            tail.fit(_head_features(head, lookup, x), y, **params)
        else:
            pipeline.fit(x, y, **params)


def predict_with_lookup(
    pipeline: Any, x: np.ndarray, n_classes: int, lookup: FeatureLookup | None
) -> np.ndarray:
    """Class probabilities of a fitted pipeline, its feature step served by ``lookup``.

    Args:
        pipeline: a fitted classical pipeline (feature head, then the model).
        x: model input rows (beats, then any context columns).
        n_classes: the task's number of classes (columns of the result).
        lookup: cached features of the task's beats, or None (the pipeline computes them).

    Returns:
        Probabilities (n, n_classes).
    """
    head, tail = head_and_tail(pipeline)
    if head is not None and lookup is not None:
        return predict_proba_full(tail, _head_features(head, lookup, x), n_classes)
    return predict_proba_full(pipeline, x, n_classes)


def feature_lookup(cfg: Config, task: str, input: str) -> FeatureLookup | None:
    """The feature lookup of a task for a feature input (``features``, ``features+rr``) or None."""
    if split_context(input)[0] != "features":
        return None
    return FeatureLookup(cfg, task, FeatureExtractor.from_config(cfg))
