"""Train and evaluate the classical models (LR, RF, LightGBM on raw beats or features).

One call of :func:`train_classical` is one MLflow run ``{model}-{input}-{scheme}`` in the
task's experiment: fit on the training part (optionally a stratified subsample), predict the
validation and test parts, write the metrics/plots/figures with
:func:`~ecgops.evaluation.results.save_evaluation` and log the fitted pipeline as a pyfunc
model. For PTB's patient split the model is also cross-validated over the grouped folds (mean
± std), because a single patient test part holds few MI patients.

Feature pipelines look features up in ``data/features/{task}.parquet`` (the DVC stage) when it
was built with the same settings, and compute the missing ones; test predictions always run
the full pipeline from raw beats, so the prediction speed includes feature extraction.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.splits import stratified_subsample
from ecgops.evaluation.metrics import classification_metrics
from ecgops.features.tsfeatures import FeatureExtractor, load_cached_features
from ecgops.io import write_json
from ecgops.models.classical import (
    IMBALANCE,
    INPUTS,
    MODELS,
    build_pipeline,
    check_choice,
    describe_fit,
    head_and_tail,
    predict_proba_full,
)
from ecgops.schema import SIGNAL_COLUMNS, labels, signals

log = logging.getLogger(__name__)

CV_METRICS = ("balanced_accuracy", "auroc", "accuracy", "macro_f1", "auprc")


# ---------------------------------------------------------------------------------------------
# data helpers
# ---------------------------------------------------------------------------------------------
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
        source = cfg.path("processed") / f"{task}.parquet"
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


def _fit(pipeline: Any, x: np.ndarray, y: np.ndarray, lookup: FeatureLookup | None) -> None:
    """Fit a pipeline on raw beats, using cached features for the extractor step if given."""
    head, tail = head_and_tail(pipeline)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
        if head is not None and lookup is not None:
            tail.fit(lookup(x), y)
        else:
            pipeline.fit(x, y)


def _predict(
    pipeline: Any, x: np.ndarray, n_classes: int, lookup: FeatureLookup | None
) -> np.ndarray:
    head, tail = head_and_tail(pipeline)
    if head is not None and lookup is not None:
        return predict_proba_full(tail, lookup(x), n_classes)
    return predict_proba_full(pipeline, x, n_classes)


# ---------------------------------------------------------------------------------------------
# fitting and evaluation
# ---------------------------------------------------------------------------------------------
def fit_predict(
    cfg: Config,
    task: str,
    model: str,
    input: str,
    imbalance: str,
    train: pd.DataFrame,
    evaluate: dict[str, pd.DataFrame],
    lookup: FeatureLookup | None = None,
    timed_part: str | None = None,
) -> dict[str, Any]:
    """Fit one pipeline on ``train`` and predict the parts in ``evaluate``.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        model: ``lr``, ``rf`` or ``lgbm``.
        input: ``raw`` or ``features``.
        imbalance: ``smote``, ``class_weight`` or ``none``.
        train: training beats (already subsampled).
        evaluate: name → beats to predict.
        lookup: cached features for fitting (and for the untimed parts).
        timed_part: a part predicted through the full pipeline from raw beats, and timed.

    Returns:
        ``pipeline`` (fitted), ``proba`` (name → probabilities), ``timing``.
    """
    n_classes = len(cfg.class_names(task))
    pipeline = build_pipeline(cfg, model, input, n_classes, imbalance)
    x_train, y_train = signals(train), labels(train)
    start = time.perf_counter()
    _fit(pipeline, x_train, y_train, lookup)
    fit_s = time.perf_counter() - start
    timing = {"fit_seconds": fit_s, "train_beats_per_s": len(train) / max(fit_s, 1e-9)}
    proba: dict[str, np.ndarray] = {}
    for part, df in evaluate.items():
        if not len(df):
            continue
        if part == timed_part:
            start = time.perf_counter()
            proba[part] = predict_proba_full(pipeline, signals(df), n_classes)
            seconds = time.perf_counter() - start
            timing["predict_seconds"] = seconds
            timing["predict_beats_per_s"] = len(df) / max(seconds, 1e-9)
        else:
            proba[part] = _predict(pipeline, signals(df), n_classes, lookup)
    return {"pipeline": pipeline, "proba": proba, "timing": timing}


def cross_validate_patients(
    cfg: Config,
    task: str,
    model: str,
    input: str,
    imbalance: str,
    lookup: FeatureLookup | None = None,
) -> dict[str, Any]:
    """Grouped (patient) cross-validation: fit on each fold's training part, score its test.

    Args:
        cfg: configuration.
        task: a task with grouped folds (``ptb``).
        model, input, imbalance: the pipeline.
        lookup: cached features.

    Returns:
        ``{metric}_mean`` / ``{metric}_std`` (sample std over folds) for balanced accuracy,
        AUROC, accuracy, macro F1 and AUPRC, ``folds`` and the per-fold balanced accuracies.
    """
    from ecgops.data.splits import iter_patient_folds

    per_fold: list[dict[str, float]] = []
    for k, (train, _val, test) in enumerate(iter_patient_folds(cfg, task)):
        train = stratified_subsample(train, cfg.classical.max_train_rows, cfg.seed)
        fitted = fit_predict(cfg, task, model, input, imbalance, train, {"test": test}, lookup)
        scores = classification_metrics(labels(test), fitted["proba"]["test"])
        log.info("fold %d: balanced accuracy %.3f", k, scores["balanced_accuracy"])
        per_fold.append(scores)
    out: dict[str, Any] = {"folds": len(per_fold)}
    for metric in CV_METRICS:
        values = np.array([s[metric] for s in per_fold], dtype=np.float64)
        out[f"{metric}_mean"] = float(np.nanmean(values))
        out[f"{metric}_std"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0
    out["balanced_accuracy_folds"] = [float(s["balanced_accuracy"]) for s in per_fold]
    return out


def run_params(cfg: Config, model: str, input: str, imbalance: str) -> dict[str, Any]:
    """The MLflow params of a classical run: the model's config section and its inputs."""
    params: dict[str, Any] = {
        "model": model,
        "input": input,
        "imbalance": imbalance,
        "seed": cfg.seed,
        "max_train_rows": cfg.classical.max_train_rows,
        model: getattr(cfg.classical, model).model_dump(),
    }
    if imbalance == "smote":
        params["smote_k_neighbors"] = cfg.classical.smote_k_neighbors
    if input == "features":
        params["features"] = cfg.features.model_dump()
    return params


def train_classical(
    cfg: Config,
    task: str,
    scheme: str,
    model: str,
    input: str,
    imbalance: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate, track and log one classical model.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: ``beat`` or ``patient``.
        model: ``lr``, ``rf`` or ``lgbm``.
        input: ``raw`` or ``features``.
        imbalance: override of ``classical.imbalance``.

    Returns:
        The metrics record written to ``outputs/metrics/{task}/{scheme}/{model}-{input}.json``.

    Raises:
        DataError: missing or stale beat table or split.
    """
    import mlflow

    from ecgops.data.splits import load_split
    from ecgops.evaluation.results import save_evaluation
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run

    check_choice(model, MODELS, "model")
    check_choice(input, INPUTS, "input")
    imbalance = check_choice(imbalance or cfg.classical.imbalance, IMBALANCE, "imbalance")
    parts = load_split(cfg, task, scheme)
    train = stratified_subsample(parts["train"], cfg.classical.max_train_rows, cfg.seed)
    lookup = _lookup(cfg, task, input)
    name = f"{model}-{input}"
    class_names = cfg.class_names(task)
    tags = {"family": "classical", "model": model, "input": input, "imbalance": imbalance}
    params = run_params(cfg, model, input, imbalance)
    with start_run(cfg, task, f"{name}-{scheme}", scheme=scheme, params=params, tags=tags):
        fitted = fit_predict(
            cfg,
            task,
            model,
            input,
            imbalance,
            train,
            {"val": parts["val"], "test": parts["test"]},
            lookup,
            timed_part="test",
        )
        cv = None
        if task == "ptb" and scheme == "patient":
            cv = cross_validate_patients(cfg, task, model, input, imbalance, lookup)
        pipeline = fitted["pipeline"]
        facts = describe_fit(pipeline)
        if facts:
            mlflow.log_params({f"fitted.{k}": v for k, v in facts.items()})
        n = {
            "train": len(train),
            "train_available": len(parts["train"]),
            "val": len(parts["val"]),
            "test": len(parts["test"]),
        }
        record = save_evaluation(
            cfg,
            task=task,
            scheme=scheme,
            name=name,
            family="classical",
            y_test=labels(parts["test"]),
            proba_test=fitted["proba"]["test"],
            y_val=labels(parts["val"]) if len(parts["val"]) else None,
            proba_val=fitted["proba"].get("val"),
            timing=fitted["timing"],
            n=n,
            cv=cv,
            extra={
                "model": model,
                "input": input,
                "imbalance": imbalance,
                "feature_set": cfg.features.set if input == "features" else None,
                "fitted": facts,
            },
        )
        log_beat_model(pipeline, task, class_names, example=signals(parts["test"])[:3])
    return record


def _lookup(cfg: Config, task: str, input: str) -> FeatureLookup | None:
    if input != "features":
        return None
    return FeatureLookup(cfg, task, FeatureExtractor.from_config(cfg))


def compare_imbalance(
    cfg: Config,
    task: str,
    scheme: str,
    model: str,
    input: str = "raw",
    variants: tuple[str, ...] = IMBALANCE,
) -> dict[str, Any]:
    """SMOTE vs class weights vs nothing for one model, on the same split and seed.

    The winner is chosen on the validation part's balanced accuracy (for PTB's patient split:
    the grouped-CV mean, which is steadier); test figures are reported beside it. Writes
    ``outputs/benchmarks/imbalance-{task}-{scheme}-{model}-{input}.json`` (not tracked as a
    model run).

    Args:
        cfg: configuration.
        task, scheme, model, input: what to compare.
        variants: imbalance strategies to try.

    Returns:
        ``{"variants": {name: {"val": ..., "test": ..., "cv": ..., "fit_seconds": ...}},
        "winner": name, "selected_on": ...}``.
    """
    from ecgops.data.splits import load_split

    parts = load_split(cfg, task, scheme)
    train = stratified_subsample(parts["train"], cfg.classical.max_train_rows, cfg.seed)
    lookup = _lookup(cfg, task, input)
    use_cv = task == "ptb" and scheme == "patient"
    results: dict[str, Any] = {}
    for variant in variants:
        fitted = fit_predict(
            cfg,
            task,
            model,
            input,
            variant,
            train,
            {"val": parts["val"], "test": parts["test"]},
            lookup,
        )
        entry: dict[str, Any] = {"fit_seconds": fitted["timing"]["fit_seconds"]}
        for part in ("val", "test"):
            if part in fitted["proba"]:
                entry[part] = classification_metrics(labels(parts[part]), fitted["proba"][part])
        if use_cv:
            entry["cv"] = cross_validate_patients(cfg, task, model, input, variant, lookup)
        results[variant] = entry
        log.info("%s: %s", variant, entry.get("val", {}).get("balanced_accuracy"))
    selected_on = "cv.balanced_accuracy_mean" if use_cv else "val.balanced_accuracy"

    def score(variant: str) -> float:
        entry = results[variant]
        if use_cv:
            return entry["cv"]["balanced_accuracy_mean"]
        return entry.get("val", {}).get("balanced_accuracy", float("nan"))

    winner = max(variants, key=lambda v: -np.inf if np.isnan(score(v)) else score(v))
    out = {
        "task": task,
        "scheme": scheme,
        "model": model,
        "input": input,
        "profile": cfg.profile,
        "n_train": len(train),
        "variants": results,
        "winner": winner,
        "selected_on": selected_on,
    }
    target = cfg.path("outputs") / "benchmarks" / f"imbalance-{task}-{scheme}-{model}-{input}.json"
    write_json(out, target)
    return out
