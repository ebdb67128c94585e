"""Train and evaluate one classical model on per-lead features of the ``ptb12`` table.

One call of :func:`train_multilead_classical` is one MLflow run
``{model}-features-{leadset}-{scheme}`` in the ``ptb12`` experiment, run by the shared
template through :class:`MultileadClassicalRun` (a
:class:`~ecgops.training.classical.ClassicalRun`): the pipeline of the classical ``features``
input (``lr``, ``rf`` or ``lgbm``; ``classical.per_task.ptb`` applied) with its feature step
replaced by :class:`~ecgops.features.multilead_features.PerLeadFeatures`, the single-lead
feature set of each lead of ``multilead.lead_sets[leadset]`` side by side
(``<lead>__<feature>``). The split, the grouped CV folds of the patient scheme and the
record-level entry are the multi-lead nets' (:class:`~ecgops.training.multilead.MultileadRun`'s
``load``, ``cross_validate``, ``record_entry`` and ``record_extra``): same patients per part,
record rules fitted on validation records only.

The features of the split's beats are computed once per run (in memory, matched by content
like the single-lead feature cache, :class:`~ecgops.training.classical_features.FeatureLookup`;
their cost is recorded as ``timing.features_seconds``); the timed test prediction runs the
full pipeline from raw beats. The metrics record is
``outputs/metrics/ptb12/{scheme}/{model}-features-{leadset}.json`` with a ``record`` entry as
the nets', and the run is tagged ``ecgops.input = multilead-features`` and ``ecgops.leads``;
its pyfunc model reads the named lead columns of its leads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.multilead_schema import BASE_TASK, TASK
from ecgops.features.multilead_features import PerLeadFeatures
from ecgops.features.tsfeatures import FeatureExtractor
from ecgops.models.classical import IMBALANCE, MODELS, build_pipeline, check_choice
from ecgops.schema import labels
from ecgops.training.classical import ClassicalRun, classical_for_task
from ecgops.training.classical_features import FeatureLookup, fit_with_lookup
from ecgops.training.multilead import (
    INPUT_TAG,
    LEADS_TAG,
    MultileadRun,
    multilead_cv,
)
from ecgops.training.selection import grid_groups

log = logging.getLogger(__name__)

INPUT = "features"
"""The classical input the per-lead pipelines extend (its feature step, per lead)."""
INPUT_KIND = "multilead-features"
"""Value of the :data:`~ecgops.training.multilead.INPUT_TAG` run tag and of ``input.kind``."""


class MultileadClassicalRun(ClassicalRun):
    """One classical model on per-lead features of one ptb12 split (the template's hooks).

    Args:
        cfg: configuration (``classical.per_task.ptb`` is applied here).
        scheme: ``beat`` or ``patient``.
        model: ``lr``, ``rf`` or ``lgbm``.
        lead_set: a key of ``multilead.lead_sets``.
        imbalance: ``smote``, ``class_weight`` or ``none``.
    """

    # The ptb12 split, its grouped folds and the record-level entry: the multi-lead nets' own.
    load = MultileadRun.load
    cross_validate = MultileadRun.cross_validate
    record_entry = MultileadRun.record_entry
    record_extra = MultileadRun.record_extra
    model_input = MultileadRun.inputs

    def __init__(self, cfg: Config, scheme: str, model: str, lead_set: str, imbalance: str) -> None:
        super().__init__(classical_for_task(cfg, BASE_TASK), TASK, scheme, model, INPUT, imbalance)
        self.lead_set = lead_set
        self.leads = self.cfg.multilead.lead_set(lead_set)
        self.parts: dict[str, pd.DataFrame] = {}
        self.fold_records: list[dict[str, Any]] = []
        self.features_seconds = 0.0

    @property
    def name(self) -> str:
        """``{model}-features-{leadset}``."""
        return f"{self.model}-{INPUT}-{self.lead_set}"

    def extractor(self) -> PerLeadFeatures:
        """The pipeline's feature step: ``features.set`` of each lead, side by side."""
        return PerLeadFeatures(FeatureExtractor.from_config(self.cfg), self.leads)

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """The classical params, with the leads and the record-level settings."""
        return {
            **super().params(train),
            "lead_set": self.lead_set,
            "leads": self.leads,
            "record": self.cfg.multilead.record.model_dump(),
        }

    def tags(self) -> dict[str, str]:
        """The classical tags, the input kind and the leads."""
        return {**super().tags(), INPUT_TAG: INPUT_KIND, LEADS_TAG: ",".join(self.leads)}

    def cv_enabled(self) -> bool:
        """Patient scheme with grouped folds and ``multilead.cv`` on."""
        return multilead_cv(self.cfg, self.scheme)

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """Per-lead features of every beat of the split, once (timed), as the run's lookup."""
        x = np.vstack([self.model_input(parts[p]) for p in ("train", "val", "test")])
        extractor = self.extractor()
        started = time.perf_counter()
        features = extractor.transform(x)
        self.features_seconds = time.perf_counter() - started
        self.lookup = FeatureLookup.from_arrays(extractor, x, features)  # type: ignore[arg-type]
        log.info(
            "%s: %d x %d per-lead features in %.1f s",
            self.name, *features.shape, self.features_seconds,
        )  # fmt: skip

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """The fitted pipeline: per-lead features -> impute -> [select] -> [SMOTE] -> model."""
        lr_patient = self.model == "lr" and self.scheme == "patient"
        groups = grid_groups(train, self.cfg.classical.lr.cv) if lr_patient else None
        pipeline = build_pipeline(
            self.cfg, self.model, INPUT, self.n_classes, self.imbalance, groups is not None
        )
        pipeline.set_params(features=self.extractor())
        fit_with_lookup(pipeline, self.model_input(train), labels(train), self.lookup, groups)
        return pipeline

    def fit_timing(self, fitted: Any, seconds: float, n_train: int) -> dict[str, float]:
        """The fit's timing and the one-off feature extraction of the split's beats."""
        return {
            **super().fit_timing(fitted, seconds, n_train),
            "features_seconds": self.features_seconds,
        }

    def extra(self, fitted: Any) -> dict[str, Any]:
        """The classical facts, the model and its leads, and the record-level entry."""
        out = super().extra(fitted)
        described = {"name": self.model, "kind": self.family, "input": INPUT}
        out["model"] = {**described, "lead_set": self.lead_set, "leads": self.leads}
        out["input"] = {"kind": INPUT_KIND, "leads": self.leads, "lead_set": self.lead_set}
        record = self.record_extra()
        if record is not None:
            out["record"] = record
        return out

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """Log the pyfunc model (named lead columns of its leads)."""
        import mlflow

        from ecgops.registry.pyfunc import log_beat_model

        info = log_beat_model(
            fitted,
            BASE_TASK,
            self.cfg.class_names(BASE_TASK),
            example=self.model_input(parts["test"].iloc[:3]),
            calibrator=self.calibrator,
            leads=self.leads,
        )
        record["model_uri"] = info.model_uri
        record["mlflow_run_id"] = mlflow.active_run().info.run_id


def train_multilead_classical(
    cfg: Config, scheme: str, model: str, lead_set: str, imbalance: str | None = None
) -> dict[str, Any]:
    """Train, evaluate and log one classical model on per-lead features of the ptb12 table.

    Args:
        cfg: configuration (``classical``, ``features``, ``multilead``).
        scheme: ``beat`` or ``patient``.
        model: ``lr``, ``rf`` or ``lgbm``.
        lead_set: a key of ``multilead.lead_sets``.
        imbalance: override of ``classical.imbalance``.

    Returns:
        The metrics record written to
        ``outputs/metrics/ptb12/{scheme}/{model}-features-{leadset}.json`` plus ``model_uri``
        and ``mlflow_run_id``.

    Raises:
        DataError: the ptb12 table or split is missing or stale.
        ValueError: an unknown model, imbalance or lead set.
    """
    check_choice(model, MODELS, "model")
    task_cfg = classical_for_task(cfg, BASE_TASK)
    imbalance = check_choice(imbalance or task_cfg.classical.imbalance, IMBALANCE, "imbalance")
    record = MultileadClassicalRun(cfg, scheme, model, lead_set, imbalance).run()
    log.info(
        "%s/%s/%s: test balanced accuracy %.3f (record %.3f)",
        TASK, scheme, record["name"], record["test"]["balanced_accuracy"],
        record.get("record", {}).get("balanced_accuracy", float("nan")),
    )  # fmt: skip
    return record
