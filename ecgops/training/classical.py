"""Train and evaluate the classical models (LR, RF, LightGBM on raw beats or features).

One call of :func:`train_classical` is one MLflow run ``{model}-{input}-{scheme}`` in the
task's experiment, run by the shared template (:class:`~ecgops.training.run.TrainingRun`): fit
on the training part (optionally a stratified subsample), predict the validation and test
parts, write the metrics/plots/figures and log the fitted pipeline as a pyfunc model. When the
split has grouped folds (PTB's patient split) the model is also cross-validated over them (mean
± std), because a single patient test part holds few MI patients.

Feature pipelines look features up in ``data/features/{task}.parquet`` (the DVC stage) when it
was built with the same settings, and compute the missing ones; test predictions always run
the full pipeline from raw beats, so the prediction speed includes feature extraction. The
lookup and the fit/predict helpers that use it are in :mod:`ecgops.training.classical_features`
(re-exported here).

The context inputs ``raw+rr`` / ``features+rr`` (tasks with RR context) feed the pipeline each
beat's samples beside its raw RR context (:mod:`ecgops.features.context`, normalised inside the
pipeline as ``context.normalise`` says); their runs are tagged ``ecgops.needs_context = true``
and log a model that reads ``x0..x186`` and the context columns.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.splits import stratified_subsample
from ecgops.evaluation.metrics import classification_metrics
from ecgops.features.context import model_context_columns, model_input
from ecgops.io import write_json
from ecgops.models import check_context_task, split_context
from ecgops.models.classical import (
    IMBALANCE,
    INPUTS,
    MODELS,
    build_pipeline,
    check_choice,
    describe_fit,
    predict_proba_full,
)
from ecgops.schema import labels
from ecgops.training.classical_features import FeatureLookup as FeatureLookup
from ecgops.training.classical_features import (
    feature_lookup,
    fit_with_lookup,
    predict_with_lookup,
)
from ecgops.training.run import MIN_SECONDS, TrainingRun
from ecgops.training.selection import grid_groups, selection_folds, selection_score

log = logging.getLogger(__name__)


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
    trainer = ClassicalRun(cfg, task, cfg.splits.scheme, model, input, imbalance, lookup)
    start = time.perf_counter()
    pipeline = trainer.fit(train, train.iloc[:0], fold=None)
    timing = trainer.fit_timing(pipeline, time.perf_counter() - start, len(train))
    proba: dict[str, np.ndarray] = {}
    for part, df in evaluate.items():
        if not len(df):
            continue
        start = time.perf_counter()
        proba[part] = trainer.predict(pipeline, df, timed=part == timed_part)
        if part == timed_part:
            seconds = time.perf_counter() - start
            timing["predict_seconds"] = seconds
            timing["predict_beats_per_s"] = len(df) / max(seconds, MIN_SECONDS)
    return {"pipeline": pipeline, "proba": proba, "timing": timing}


class ClassicalRun(TrainingRun):
    """One classical model on one split (the :class:`~ecgops.training.run.TrainingRun` hooks).

    Args:
        cfg: configuration.
        task, scheme: the split.
        model: ``lr``, ``rf`` or ``lgbm``.
        input: ``raw`` or ``features``; ``raw+rr`` / ``features+rr`` beside the RR context
            (:attr:`context_columns`, ``context.normalise``).
        imbalance: ``smote``, ``class_weight`` or ``none``.
        lookup: cached features (default: looked up for the ``features`` inputs).
    """

    family = "classical"

    def __init__(
        self,
        cfg: Config,
        task: str,
        scheme: str,
        model: str,
        input: str,
        imbalance: str,
        lookup: FeatureLookup | None = None,
    ) -> None:
        cfg = classical_for_task(cfg, task)
        super().__init__(cfg, task, scheme)
        self.model, self.input, self.imbalance = model, input, imbalance
        self.lookup = lookup
        self.n_classes = len(cfg.class_names(task))
        if split_context(input)[1]:
            self.context_columns = model_context_columns(cfg.context.normalise)

    @property
    def name(self) -> str:
        """``{model}-{input}``."""
        return f"{self.model}-{self.input}"

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """See :func:`run_params`."""
        return run_params(self.cfg, self.model, self.input, self.imbalance)

    def tags(self) -> dict[str, str]:
        """Family, model, input and imbalance strategy."""
        return {
            "family": self.family,
            "model": self.model,
            "input": self.input,
            "imbalance": self.imbalance,
        }

    def subsample(self, train: pd.DataFrame) -> pd.DataFrame:
        """A stratified subsample of ``classical.max_train_rows``."""
        return stratified_subsample(train, self.cfg.classical.max_train_rows, self.cfg.seed)

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """The feature cache of the ``features`` input."""
        if self.lookup is None:
            self.lookup = feature_lookup(self.cfg, self.task, self.input)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """The fitted pipeline (the validation part is not used; the LR grid search's inner
        folds are grouped by patient / record under the patient scheme)."""
        lr_patient = self.model == "lr" and self.scheme == "patient"
        groups = grid_groups(train, self.cfg.classical.lr.cv) if lr_patient else None
        pipeline = build_pipeline(
            self.cfg, self.model, self.input, self.n_classes, self.imbalance, groups is not None
        )
        fit_with_lookup(pipeline, self.model_input(train), labels(train), self.lookup, groups)
        return pipeline

    def model_input(self, beats: pd.DataFrame) -> np.ndarray:
        """The pipeline's input rows: beats (n, 187), beside their raw context for ``...+rr``."""
        return model_input(beats, self.context_columns)

    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """Timed: the full pipeline from raw beats; else with cached features."""
        if timed:
            return predict_proba_full(fitted, self.model_input(beats), self.n_classes)
        return predict_with_lookup(fitted, self.model_input(beats), self.n_classes, self.lookup)

    def counts(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> dict[str, int]:
        """Train (used and available), val and test rows."""
        return {
            "train": len(train),
            "train_available": len(parts["train"]),
            "val": len(parts["val"]),
            "test": len(parts["test"]),
        }

    def extra(self, fitted: Any) -> dict[str, Any]:
        """Model, input, imbalance, feature set and the fitted facts (also MLflow params)."""
        import mlflow

        facts = describe_fit(fitted)
        if facts:
            mlflow.log_params({f"fitted.{k}": v for k, v in facts.items()})
        return {
            "model": self.model,
            "input": self.input,
            "imbalance": self.imbalance,
            "feature_set": self.cfg.features.set if self.input.startswith("features") else None,
            "context_columns": self.context_columns,
            "context_normalise": self.cfg.context.normalise if self.context_columns else None,
            "fitted": facts,
        }

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """Log the fitted pipeline as the run's pyfunc model."""
        from ecgops.registry.pyfunc import log_beat_model

        class_names = self.cfg.class_names(self.task)
        log_beat_model(
            fitted,
            self.task,
            class_names,
            example=self.model_input(parts["test"].iloc[:3]),
            calibrator=self.calibrator,
            context_columns=self.context_columns,
        )


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
    return ClassicalRun(cfg, task, "patient", model, input, imbalance, lookup).cross_validate()


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
    base, context = split_context(input)
    if base == "features":
        params["features"] = cfg.features.model_dump()
    if context:
        params["context"] = cfg.context.model_dump()
        params["rhythm"] = cfg.data.rhythm.model_dump(mode="json")
    return params


def classical_for_task(cfg: Config, task: str) -> Config:
    """The config with ``classical.per_task[task]`` applied to the ``classical`` section."""
    return cfg.model_copy(update={"classical": cfg.classical.for_task(task)})


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
        input: ``raw`` or ``features``, or ``raw+rr`` / ``features+rr`` (beside the RR
            context; tasks with context only).
        imbalance: override of ``classical.imbalance``.

    Returns:
        The metrics record written to ``outputs/metrics/{task}/{scheme}/{model}-{input}.json``.

    Raises:
        DataError: missing or stale beat table or split, or a table without RR context.
        ValueError: an unknown model, input or imbalance, or a context input for ``ptb``.
    """
    check_choice(model, MODELS, "model")
    check_choice(input, INPUTS, "input")
    check_context_task(input, task)
    cfg = classical_for_task(cfg, task)
    imbalance = check_choice(imbalance or cfg.classical.imbalance, IMBALANCE, "imbalance")
    return ClassicalRun(cfg, task, scheme, model, input, imbalance).run()


def compare_imbalance(
    cfg: Config,
    task: str,
    scheme: str,
    model: str,
    input: str = "raw",
    variants: tuple[str, ...] = IMBALANCE,
) -> dict[str, Any]:
    """SMOTE vs class weights vs nothing for one model, on the same split and seed.

    The winner is chosen on the validation part's balanced accuracy (when the split has grouped
    folds: the mean over :func:`selection_folds`, grouped folds of the split's training and
    validation patients only, so no fold holds a test or gate patient); test figures and the
    grouped CV over every fold are reported beside it, never used to choose. Writes
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
    from ecgops.data.splits import has_folds

    parts = ClassicalRun(cfg, task, scheme, model, input, variants[0]).load()
    lookup = feature_lookup(cfg, task, input)
    use_cv = has_folds(cfg, task, scheme)
    results: dict[str, Any] = {}
    train = parts["train"]
    for variant in variants:
        trainer = ClassicalRun(cfg, task, scheme, model, input, variant, lookup)
        train = trainer.subsample(parts["train"])
        _, proba, timing = trainer.evaluate(parts, train, timed=False)
        entry: dict[str, Any] = {"fit_seconds": timing["fit_seconds"]}
        for part in ("val", "test"):
            if part in proba:
                entry[part] = classification_metrics(labels(parts[part]), proba[part])
        if use_cv:
            entry["cv"] = trainer.cross_validate()  # reported only: its folds test every patient
            entry["selection_cv"] = selection_score(trainer, selection_folds(cfg, task))
        results[variant] = entry
        log.info("%s: %s", variant, entry.get("val", {}).get("balanced_accuracy"))
    selected_on = "selection_cv.balanced_accuracy_mean" if use_cv else "val.balanced_accuracy"

    def score(variant: str) -> float:
        entry = results[variant]
        if use_cv:
            return entry["selection_cv"]["balanced_accuracy_mean"]
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
