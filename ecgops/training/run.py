"""One training run, the same for every trainer: split -> subsample -> fit -> evaluate -> CV -> log.

:class:`TrainingRun` is the template; a trainer (classical, deep, pretrain, finetune) is a
subclass that says how to fit and predict and what else to record. :meth:`TrainingRun.run`

1. loads the scheme's split (:meth:`~TrainingRun.load`: :func:`~ecgops.data.splits.load_split`,
   plus each record's mean RR for a model that reads the RR context) and subsamples its
   training part (:meth:`~TrainingRun.subsample`); every run is tagged
   ``ecgops.needs_context`` (``true`` when :attr:`~TrainingRun.context_columns` is set);
2. prepares what the run needs before tracking starts (:meth:`~TrainingRun.prepare`: device,
   encoders, feature caches) and opens the MLflow run with the trainer's params and tags;
3. fits on the training part (early stopping on the validation part where the trainer uses it),
   predicts the validation part and the test part (timed);
4. cross-validates over the grouped folds whenever the split has them
   (:func:`~ecgops.data.splits.has_folds`; PTB's patient scheme), each fold subsampled like the
   main run; a fold identical to the main split reuses its predictions when the trainer allows;
5. fits the served model's calibrator on the validation predictions only
   (:meth:`~TrainingRun.calibrate`; ``calibration:`` in params.yaml), kept in
   :attr:`~TrainingRun.calibrator` for the trainer to store in its pyfunc;
6. writes metrics, plots and figures with :func:`~ecgops.evaluation.results.save_evaluation`
   (validation figures uncalibrated, for selection; test figures calibrated, as served), then
   lets the trainer log its model (:meth:`~TrainingRun.finish`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.schema import labels

log = logging.getLogger(__name__)

CV_METRICS = ("balanced_accuracy", "auroc", "accuracy", "macro_f1", "auprc")
MIN_SECONDS = 1e-9  # rates are divided by at least this (a fit faster than the clock's tick)


def cv_summary(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and sample standard deviation of the fold metrics.

    Args:
        per_fold: each fold's test metrics (``classification_metrics``).

    Returns:
        ``folds``, ``{metric}_mean`` / ``{metric}_std`` (ddof 1; 0 for one fold) for
        :data:`CV_METRICS`, and ``balanced_accuracy_folds``.
    """
    out: dict[str, Any] = {"folds": len(per_fold)}
    for metric in CV_METRICS:
        values = np.array([s[metric] for s in per_fold], dtype=np.float64)
        out[f"{metric}_mean"] = float(np.nanmean(values))
        out[f"{metric}_std"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0
    out["balanced_accuracy_folds"] = [float(s["balanced_accuracy"]) for s in per_fold]
    return out


def same_parts(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """Whether two train/val/test cuts hold the same beats (record, beat and label, in order)."""
    keys = ["record", "beat", "label"]
    for part in ("train", "val", "test"):
        if len(a[part]) != len(b[part]):
            return False
        if not a[part][keys].reset_index(drop=True).equals(b[part][keys].reset_index(drop=True)):
            return False
    return True


class TrainingRun(ABC):
    """The template of one tracked training run (see the module docstring).

    Subclasses set :attr:`family`, implement :attr:`name`, :meth:`fit` and :meth:`predict`, and
    override the other hooks where they record more.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: ``beat`` or ``patient``.
    """

    family: ClassVar[str]
    reuse_identical_fold: ClassVar[bool] = False  # a CV fold equal to the split: reuse its test

    def __init__(self, cfg: Config, task: str, scheme: str) -> None:
        self.cfg, self.task, self.scheme = cfg, task, scheme
        self.fold_scores: list[dict[str, float]] = []
        self.proba: dict[str, np.ndarray] = {}  # the main run's predictions, part -> (n, k)
        self.calibrator: Any = None  # fitted on the main run's validation predictions
        self.context_columns: list[str] = []  # the RR context columns the model reads, if any

    # ---- identity ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def name(self) -> str:
        """The metrics name (``outputs/metrics/{task}/{scheme}/{name}.json``)."""

    @property
    def run_name(self) -> str:
        """The MLflow run name."""
        return f"{self.name}-{self.scheme}"

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """MLflow params of the run (``train``: the subsampled training part)."""
        return {}

    def tags(self) -> dict[str, str]:
        """MLflow tags of the run (beside the provenance tags)."""
        return {"family": self.family}

    # ---- data ----------------------------------------------------------------------------------
    def load(self) -> dict[str, pd.DataFrame]:
        """The scheme's split; for a context model checked for its context columns and with
        each record's mean RR (:func:`ecgops.features.context.split_with_context`)."""
        from ecgops.data.splits import load_split

        parts = load_split(self.cfg, self.task, self.scheme)
        if not self.context_columns:
            return parts
        from ecgops.features.context import split_with_context

        return split_with_context(self.cfg, self.task, parts, self.context_columns)

    def subsample(self, train: pd.DataFrame) -> pd.DataFrame:
        """The training rows used (the main run and every CV fold); default all."""
        return train

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """Set up what the run needs before the MLflow run starts (device, encoders, caches)."""
        return None

    def start(self, parts: dict[str, pd.DataFrame]) -> None:
        """First thing inside the MLflow run, before fitting (e.g. figures of the start)."""
        return None

    # ---- model ---------------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """Fit a model on ``train`` (``val`` for early stopping); ``fold`` None: the main run."""

    @abstractmethod
    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """Class probabilities (n, k); ``timed``: the timed test prediction of the main run."""

    def fit_timing(self, fitted: Any, seconds: float, n_train: int) -> dict[str, float]:
        """Timing facts of the main fit (``seconds``: its wall time)."""
        return {"fit_seconds": seconds, "train_beats_per_s": n_train / max(seconds, MIN_SECONDS)}

    def counts(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> dict[str, int]:
        """Row counts recorded under ``n``."""
        return {"train": len(train), "val": len(parts["val"]), "test": len(parts["test"])}

    def extra(self, fitted: Any) -> dict[str, Any]:
        """Facts added to the metrics record (may also log to the active MLflow run)."""
        return {}

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """After the metrics are written, inside the MLflow run: log the model, figures."""
        return None

    def summary(self, record: dict[str, Any], run: Any) -> dict[str, Any]:
        """What :meth:`run` returns (default: the metrics record)."""
        return record

    def calibrate(self, y_val: np.ndarray, proba_val: np.ndarray | None) -> Any:
        """The served model's calibrator, fitted on the validation predictions only.

        Args:
            y_val: labels of the validation part.
            proba_val: the model's validation probabilities (None: no validation part).

        Returns:
            A fitted :class:`~ecgops.evaluation.calibration.Calibrator` (the method of
            ``calibration.classical`` or ``calibration.deep`` for :attr:`family`; the identity,
            with its ``skipped_reason``, when validation is too small).
        """
        from ecgops.evaluation.calibration import fit_from_config

        classes = self.cfg.class_names(self.task)
        return fit_from_config(self.cfg.calibration, self.family, y_val, proba_val, classes)

    # ---- cross-validation ----------------------------------------------------------------------
    def cv_enabled(self) -> bool:
        """Whether to cross-validate: whenever the split has grouped folds."""
        from ecgops.data.splits import has_folds

        return has_folds(self.cfg, self.task, self.scheme)

    def summarise_cv(self, per_fold: list[dict[str, float]]) -> dict[str, Any]:
        """The ``cv`` entry of the record from the folds' test metrics."""
        return cv_summary(per_fold)

    def cross_validate(
        self,
        main: dict[str, pd.DataFrame] | None = None,
        main_test_proba: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Fit and score every grouped fold (subsampled like the main run).

        Args:
            main: the main run's parts (training part subsampled); with
                :attr:`reuse_identical_fold`, a fold holding exactly these parts reuses
                ``main_test_proba`` instead of training again.
            main_test_proba: the main run's test probabilities.

        Returns:
            :meth:`summarise_cv` of the folds; the per-fold metrics are kept in
            :attr:`fold_scores`.
        """
        from ecgops.data.splits import iter_patient_folds
        from ecgops.evaluation.metrics import classification_metrics

        self.fold_scores = []
        for k, (train, val, test) in enumerate(iter_patient_folds(self.cfg, self.task)):
            train = self.subsample(train)
            fold = {"train": train, "val": val, "test": test}
            reuse = self.reuse_identical_fold and main is not None and main_test_proba is not None
            if reuse and same_parts(main, fold):
                proba = main_test_proba
                log.info("fold %d is the split itself: reusing its model", k)
            else:
                proba = self.predict(self.fit(train, val, fold=k), test, timed=False)
            scores = classification_metrics(labels(test), proba)
            log.info(
                "%s fold %d: balanced accuracy %.3f", self.name, k, scores["balanced_accuracy"]
            )
            self.fold_scores.append(scores)
        return self.summarise_cv(self.fold_scores)

    # ---- the template --------------------------------------------------------------------------
    def evaluate(
        self, parts: dict[str, pd.DataFrame], train: pd.DataFrame, timed: bool = True
    ) -> tuple[Any, dict[str, np.ndarray], dict[str, float]]:
        """Fit on ``train`` and predict the validation and test parts.

        Args:
            parts: the split.
            train: its (subsampled) training part.
            timed: predict the test part as the timed prediction of the main run.

        Returns:
            (the fitted model, part -> probabilities for the non-empty parts, timing).
        """
        started = time.perf_counter()
        fitted = self.fit(train, parts["val"], fold=None)
        timing = self.fit_timing(fitted, time.perf_counter() - started, len(train))
        proba: dict[str, np.ndarray] = {}
        if len(parts["val"]):
            proba["val"] = self.predict(fitted, parts["val"], timed=False)
        if len(parts["test"]):
            started = time.perf_counter()
            proba["test"] = self.predict(fitted, parts["test"], timed=timed)
            seconds = time.perf_counter() - started
            if timed:
                timing["predict_seconds"] = seconds
                timing["predict_beats_per_s"] = len(parts["test"]) / max(seconds, MIN_SECONDS)
        return fitted, proba, timing

    def run(self) -> dict[str, Any]:
        """Load, subsample, fit, evaluate, cross-validate, write and log (see the module).

        Returns:
            :meth:`summary` of the metrics record.

        Raises:
            DataError: missing or stale beat table or split.
        """
        from ecgops.evaluation.results import save_evaluation
        from ecgops.features.context import NEEDS_CONTEXT_TAG
        from ecgops.tracking import start_run

        parts = self.load()
        train = self.subsample(parts["train"])
        self.prepare(parts, train)
        params = self.params(train)
        tags = {**self.tags(), NEEDS_CONTEXT_TAG: str(bool(self.context_columns)).lower()}
        with start_run(self.cfg, self.task, self.run_name, self.scheme, params, tags) as run:
            self.start(parts)
            fitted, proba, timing = self.evaluate(parts, train)
            self.proba = proba
            cv = None
            if self.cv_enabled():
                main = {**parts, "train": train}
                cv = self.cross_validate(main, proba.get("test"))
            y_val = labels(parts["val"])
            self.calibrator = self.calibrate(y_val, proba.get("val"))
            record = save_evaluation(
                self.cfg,
                task=self.task,
                scheme=self.scheme,
                name=self.name,
                family=self.family,
                y_test=labels(parts["test"]),
                proba_test=proba["test"],
                y_val=y_val if len(y_val) else None,
                proba_val=proba.get("val"),
                timing=timing,
                n=self.counts(parts, train),
                cv=cv,
                extra=self.extra(fitted),
                calibrator=self.calibrator,
            )
            self.finish(fitted, record, parts)
        return self.summary(record, run)
