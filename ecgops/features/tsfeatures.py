"""Time-series features of beats, computed on each beat without its zero padding.

Two sets:

* ``efficient``: tsfresh's ``EfficientFCParameters`` (~780 features, about 0.16 s per beat per
  core): the reference, too slow to rerun on schedule.
* ``compact``: ours, vectorised numpy over beats that share a true length. tsfresh calculators
  that matter for beats keep tsfresh's names and values (``value__quantile__q_0.1``, ...), plus
  the true length, relative FFT band powers (``spectrum__*``), R-peak-relative morphology
  (``morph__*``: S trough, ST level, T wave), the R-aligned waveform averaged over short blocks
  (``wave__*``) and the beat resampled to a fixed number of points (``phase__*``).

Both are deterministic and per-beat (a beat's features do not depend on the other beats), so
chunking and the number of worker processes do not change the result. Extraction runs in
chunks (``features.chunk_size``) over ``features.n_jobs`` processes with a progress bar.

:class:`FeatureExtractor` is the sklearn transformer used as the first step of feature
pipelines (raw beats in, features out), so a logged model computes features at prediction
time; :class:`RelevanceSelector` is tsfresh's relevance filter as a pipeline step (fitted on
training data only).

The compact set itself (its calculators and names) lives in :mod:`ecgops.features.compact`;
its public entry points are re-exported here.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ecgops.features.compact import VALUE as VALUE
from ecgops.features.compact import compact_feature_names as compact_feature_names
from ecgops.features.compact import compact_features as compact_features
from ecgops.features.compact import compact_spec as compact_spec
from ecgops.features.compact import ts_name as ts_name
from ecgops.features.content_memo import ContentMemo, content_key
from ecgops.features.padding import as_beats, to_long
from ecgops.schema import BEAT_LEN, SIGNAL_COLUMNS, signals

log = logging.getLogger(__name__)

FEATURE_SETS = ("compact", "efficient")
SPEC_ATTR = "ecgops_feature_spec"  # parquet/DataFrame attribute: what produced the features


# ---------------------------------------------------------------------------------------------
# the efficient set (tsfresh)
# ---------------------------------------------------------------------------------------------
def efficient_features(x: np.ndarray) -> pd.DataFrame:
    """tsfresh ``EfficientFCParameters`` on the stripped beats (single process).

    Args:
        x: beats, shape (n, 187).

    Returns:
        One row per beat (same order), float64 feature columns in tsfresh's (sorted) order.
    """
    from tsfresh import extract_features
    from tsfresh.feature_extraction import EfficientFCParameters

    ids, time, value = to_long(x)
    long = pd.DataFrame({"id": ids, "time": time, VALUE: value})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = extract_features(
            long,
            column_id="id",
            column_sort="time",
            column_value=VALUE,
            default_fc_parameters=EfficientFCParameters(),
            n_jobs=0,
            disable_progressbar=True,
        )
    feats = feats.reindex(np.arange(as_beats(x).shape[0]))
    return feats.reset_index(drop=True).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# chunked, parallel extraction
# ---------------------------------------------------------------------------------------------
def _extract_chunk(x: np.ndarray, set_name: str, spec: dict[str, Any] | None) -> pd.DataFrame:
    if set_name == "compact":
        if spec is None:
            raise ValueError("the compact feature set needs its spec (features.compact)")
        return compact_features(x, spec)
    if set_name == "efficient":
        return efficient_features(x)
    raise ValueError(f"unknown feature set {set_name!r}; expected one of {FEATURE_SETS}")


def _chunks(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, x.shape[0], size):
        yield x[start : start + size]


def extract_features(
    x: np.ndarray,
    set_name: str,
    spec: dict[str, Any] | None = None,
    n_jobs: int = 1,
    chunk_size: int = 500,
    progress: bool = False,
) -> pd.DataFrame:
    """Features of beats, in chunks over worker processes, with a progress bar.

    Args:
        x: beats, shape (n, 187).
        set_name: ``compact`` or ``efficient``.
        spec: the compact set's parameters (:func:`compact_spec`).
        n_jobs: worker processes (1: in this process).
        chunk_size: beats per chunk.
        progress: show a tqdm progress bar (beats).

    Returns:
        One row per beat (same order as ``x``); ±inf replaced by NaN.
    """
    x = as_beats(x)
    if x.shape[0] == 0:
        raise ValueError("no beats to extract features from")
    parts = list(_chunks(x, max(1, int(chunk_size))))
    if n_jobs == 1 or len(parts) == 1:
        results: Iterator[pd.DataFrame] = (_extract_chunk(p, set_name, spec) for p in parts)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_extract_chunk)(p, set_name, spec) for p in parts
        )
    bar = None
    if progress:  # tqdm only when asked: a served model needs no progress bar (nor tqdm)
        from tqdm.auto import tqdm

        bar = tqdm(total=x.shape[0], unit="beat", desc=f"{set_name} features")
    frames: list[pd.DataFrame] = []
    try:
        for part, frame in zip(parts, results, strict=True):
            frames.append(frame)
            if bar is not None:
                bar.update(part.shape[0])
    finally:
        if bar is not None:
            bar.close()
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return out.replace([np.inf, -np.inf], np.nan)


class StatelessTransformer(TransformerMixin, BaseEstimator):
    """A transformer with nothing to learn: always fitted, its input has no NaN."""

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.allow_nan = False
        return tags


class FeatureExtractor(StatelessTransformer):
    """Raw beats (n, 187) in, a feature matrix out: the first step of feature pipelines.

    Stateless (nothing is fitted), so a pipeline may be fitted on precomputed features and
    still predict from raw beats.

    Args:
        set_name: ``compact`` or ``efficient``.
        spec: the compact set's parameters (:func:`compact_spec`).
        n_jobs: worker processes for large batches.
        chunk_size: beats per chunk.
    """

    def __init__(
        self,
        set_name: str = "compact",
        spec: dict[str, Any] | None = None,
        n_jobs: int = 1,
        chunk_size: int = 500,
    ) -> None:
        self.set_name = set_name
        self.spec = spec
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size

    @classmethod
    def from_config(cls, cfg: Any, set_name: str | None = None) -> FeatureExtractor:
        """Build from a Config (``features`` section; set from the config unless given)."""
        return cls(
            set_name=set_name or cfg.features.set,
            spec=compact_spec(cfg),
            n_jobs=cfg.features.n_jobs,
            chunk_size=cfg.features.chunk_size,
        )

    def fit(self, x: Any, y: Any = None) -> FeatureExtractor:
        """Nothing to learn; checks the set name and records the output width."""
        if self.set_name not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.set_name!r}; expected {FEATURE_SETS}")
        self.n_features_in_ = BEAT_LEN
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Features of raw beats (n, 187) as a float64 array (NaN where undefined)."""
        return self.frame(x).to_numpy(dtype=np.float64)

    def frame(self, x: Any, progress: bool = False) -> pd.DataFrame:
        """Features of raw beats as a DataFrame with named columns."""
        if isinstance(x, pd.DataFrame):
            x = x[SIGNAL_COLUMNS].to_numpy() if "x0" in x.columns else x.to_numpy()
        return extract_features(x, self.set_name, self.spec, self.n_jobs, self.chunk_size, progress)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features."""
        if self.set_name == "compact":
            return np.asarray(compact_feature_names(self.spec or {}), dtype=object)
        probe = np.linspace(1.0, 0.0, BEAT_LEN)[None, :]
        return np.asarray(efficient_features(probe).columns, dtype=object)

    def fingerprint(self) -> str:
        """What determines the features (set and spec), for checking a cached feature table."""
        spec = self.spec if self.set_name == "compact" else None
        return json.dumps({"set": self.set_name, "spec": spec}, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
SELECTION_MEMO = ContentMemo(size=64)
"""Relevance masks by training rows, labels and FDR: a pipeline run fits up to 18 models on
one split's features (3 models x 6 grouped folds of the PTB patient split); a mask is a few
hundred booleans."""


class RelevanceSelector(TransformerMixin, BaseEstimator):
    """tsfresh's relevance filter (univariate tests, Benjamini-Yekutieli FDR) as a pipeline step.

    Fitted on the training part only (it is a pipeline step). Constant features are dropped;
    if no feature passes the filter, all non-constant features are kept.

    The tests run in this process: tsfresh parallelises them with a forking
    ``multiprocessing.Pool``, and a fork of a process with running threads (the Prefect
    pipeline trains models in threads) can deadlock in the child. A few hundred univariate
    tests take seconds anyway.

    Args:
        fdr_level: false discovery rate of the filter.
    """

    def __init__(self, fdr_level: float = 0.05) -> None:
        self.fdr_level = fdr_level

    def fit(self, X: Any, y: Any) -> RelevanceSelector:
        """Test each feature against the labels; keep the relevant ones.

        The same rows and labels (another model's fit on the same split or fold) are tested
        once per process (:data:`SELECTION_MEMO`).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.n_features_in_ = X.shape[1]
        varying = np.nanstd(X, axis=0) > 0 if X.shape[0] else np.zeros(X.shape[1], dtype=bool)
        key = content_key(X, y, params=("relevance", self.fdr_level))
        support = SELECTION_MEMO.get(key, lambda: self._relevant(X, y, varying)).copy()
        self.fallback_ = not support.any()
        if self.fallback_:
            log.warning("relevance filter kept no feature; keeping all %d varying", varying.sum())
            support = varying if varying.any() else np.ones(X.shape[1], dtype=bool)
        self.support_ = support
        return self

    def _relevant(self, X: np.ndarray, y: np.ndarray, varying: np.ndarray) -> np.ndarray:
        """Mask of the varying features tsfresh's tests find relevant (all False: none)."""
        from tsfresh.feature_selection.relevance import calculate_relevance_table

        support = np.zeros(X.shape[1], dtype=bool)
        n_classes = len(np.unique(y))
        if n_classes < 2 or not varying.any():
            return support
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = calculate_relevance_table(
                frame.loc[:, varying],
                pd.Series(y, index=frame.index),
                ml_task="classification",
                multiclass=n_classes > 2,
                n_significant=1,
                n_jobs=0,  # no forked pool: see the class docstring
                fdr_level=self.fdr_level,
            )
        relevant = set(table.loc[table["relevant"], "feature"])
        return np.array([f"f{i}" in relevant for i in range(X.shape[1])])

    def transform(self, X: Any) -> np.ndarray:
        """The selected columns."""
        return np.asarray(X, dtype=np.float64)[:, self.support_]

    def get_support(self) -> np.ndarray:
        """Boolean mask of the kept features."""
        return self.support_


# ---------------------------------------------------------------------------------------------
# the DVC stage
# ---------------------------------------------------------------------------------------------
def features_path(cfg: Any, task: str) -> Path:
    """Path of a task's feature table (:func:`ecgops.paths.feature_table`)."""
    from ecgops.paths import feature_table

    return feature_table(cfg, task)


def build_features(cfg: Any, task: str, progress: bool = True) -> Path:
    """Compute the configured feature set for every beat of a task and write it atomically.

    Args:
        cfg: configuration (``features`` section).
        task: ``ptb`` or ``mitbih``.
        progress: show a progress bar.

    Returns:
        Path of ``data/features/{task}.parquet`` (one row per beat of the beat table, same
        order; the extractor's fingerprint is stored in the table's attributes).

    Raises:
        DataError: when the beat table is missing or has no signal columns.
    """
    from ecgops.errors import DataError
    from ecgops.io import write_parquet
    from ecgops.paths import beat_table

    source = beat_table(cfg, task)
    if not source.exists():
        raise DataError(source, "beat table not found; run `ecgops data build` first")
    try:
        table = pd.read_parquet(source, columns=SIGNAL_COLUMNS)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds
        raise DataError(source, f"cannot read the beat signal columns x0..x186 ({exc})") from exc
    if table.empty:
        raise DataError(source, "beat table has no rows")
    extractor = FeatureExtractor.from_config(cfg)
    feats = extractor.frame(signals(table), progress=progress)
    feats.attrs[SPEC_ATTR] = extractor.fingerprint()
    target = features_path(cfg, task)
    write_parquet(feats, target)
    log.info("wrote %d x %d %s features to %s", *feats.shape, extractor.set_name, target)
    return target


def load_cached_features(cfg: Any, task: str, extractor: FeatureExtractor) -> pd.DataFrame | None:
    """The task's feature table when it was built by an identical extractor, else None.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        extractor: the pipeline's extractor (its fingerprint must match the table's).

    Returns:
        The feature table (one row per beat of the beat table) or None.
    """
    path = features_path(cfg, task)
    if not path.exists():
        return None
    try:
        feats = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - an unreadable cache is recomputed, not fatal
        log.warning("%s: unreadable feature table; recomputing features", path)
        return None
    if feats.attrs.get(SPEC_ATTR) != extractor.fingerprint():
        log.info("%s: built with other feature settings; recomputing features", path)
        return None
    return feats
