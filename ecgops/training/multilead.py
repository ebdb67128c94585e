"""Train and evaluate one multi-lead deep model on the ``ptb12`` table.

One call of :func:`train_multilead` is one MLflow run ``{net}-{leadset}-{scheme}`` in the
``ptb12`` experiment, run by the shared template through :class:`MultileadRun` (a
:class:`~ecgops.training.deep.DeepRun`): the net of ``deep.archs[net]`` is built with
``in_channels`` = the leads of ``multilead.lead_sets[leadset]`` and reads each beat as those
leads side by side (``<lead>_x0..x186``, :func:`~ecgops.data.multilead_schema.lead_tensor`).
The PTB settings apply (``deep.per_task.ptb``), the split is the ptb12 split (same patients
per part as the single-lead ``ptb`` split, :mod:`ecgops.data.multilead_splits`) and on the
patient scheme the net is cross-validated over its grouped folds
(:func:`~ecgops.data.multilead_splits.iter_multilead_folds`) when ``multilead.cv`` is on.

Beside the beat-level figures the metrics record
(``outputs/metrics/ptb12/{scheme}/{net}-{leadset}.json``) has a ``record`` entry: record-level
balanced accuracy and AUROC of the mean of beat probabilities and of a learned record rule,
both fitted on validation records only (:mod:`ecgops.training.record_level`), and its ``cv``
entry the same per fold (``cv.record``). The model is logged as a pyfunc that takes the
named lead columns of its leads (input layout ``multilead-187``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.multilead_schema import BASE_TASK, TASK, lead_tensor
from ecgops.models import MULTILEAD_NETS
from ecgops.schema import labels
from ecgops.training.deep import DeepRun, checkpoint_dir, fit_net, task_config

log = logging.getLogger(__name__)

INPUT_TAG = "ecgops.input"
"""Run tag naming the model's input kind (``multilead`` here)."""
LEADS_TAG = "ecgops.leads"
"""Run tag listing the leads the model reads, comma-separated."""


def multilead_cv(cfg: Config, scheme: str) -> bool:
    """Whether a multi-lead run cross-validates: patient scheme, grouped folds, ``multilead.cv``."""
    from ecgops.data.splits import has_folds

    return cfg.multilead.cv and scheme == "patient" and has_folds(cfg, TASK, "patient")


class MultileadRun(DeepRun):
    """One multi-lead net on one ptb12 split (the template's hooks).

    Args:
        cfg: configuration (``deep.per_task.ptb`` is applied here).
        scheme: ``beat`` or ``patient``.
        model_name: a multi-lead net (:data:`~ecgops.models.MULTILEAD_NETS`) of ``deep.archs``.
        lead_set: a key of ``multilead.lead_sets``.
    """

    def __init__(self, cfg: Config, scheme: str, model_name: str, lead_set: str) -> None:
        super().__init__(task_config(cfg, BASE_TASK), TASK, scheme, model_name)
        self.lead_set = lead_set
        self.leads = self.cfg.multilead.lead_set(lead_set)
        self.parts: dict[str, pd.DataFrame] = {}
        self.fold_records: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        """``{net}-{leadset}``."""
        return f"{self.model_name}-{self.lead_set}"

    def net_kwargs(self) -> dict[str, Any]:
        """``deep.archs[net]`` with ``in_channels`` = the number of leads."""
        return {**self.cfg.deep.archs[self.model_name], "in_channels": len(self.leads)}

    def inputs(self, beats: pd.DataFrame) -> np.ndarray:
        """The beats' leads side by side, float32 (n, n_leads * 187)."""
        x = lead_tensor(beats, self.leads, self.cfg.data.beat_len)
        return x.reshape(len(beats), -1)

    def load(self) -> dict[str, pd.DataFrame]:
        """The ptb12 table cut by the scheme of the ptb12 split."""
        from ecgops.data.multilead_splits import load_multilead_assignments
        from ecgops.data.splits import PARTS, SCHEMES, read_table

        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; expected one of {SCHEMES}")
        df = read_table(self.cfg, TASK)
        parts = load_multilead_assignments(self.cfg, n_rows=len(df))[self.scheme].to_numpy()
        self.parts = {p: df[parts == p].reset_index(drop=True) for p in PARTS}
        return self.parts

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """The deep params, with the leads and the multi-lead arch."""
        return {
            **super().params(train),
            "arch": self.net_kwargs(),
            "lead_set": self.lead_set,
            "leads": self.leads,
            "record": self.cfg.multilead.record.model_dump(),
        }

    def tags(self) -> dict[str, str]:
        """The deep tags, the input kind and the leads."""
        return {**super().tags(), INPUT_TAG: "multilead", LEADS_TAG: ",".join(self.leads)}

    def cv_enabled(self) -> bool:
        """Patient scheme with grouped folds and ``multilead.cv`` on."""
        return multilead_cv(self.cfg, self.scheme)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """(net, FitResult), checkpointed under ``ptb12/{scheme}/{net}-{leadset}``."""
        sub, desc = ("main", "train") if fold is None else (f"fold{fold}", f"fold{fold}")
        ckpt = checkpoint_dir(self.cfg, self.task, self.scheme, self.name) / sub
        parts = ((self.inputs(train), labels(train)), (self.inputs(val), labels(val)))
        arch, kwargs = self.model_name, self.net_kwargs()
        return fit_net(self.cfg, arch, kwargs, self.n_classes, parts, ckpt, self.device, desc)

    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """Probabilities in batches of ``deep.eval_batch_size``."""
        from ecgops.training.engine import predict_proba

        net, _ = fitted
        return predict_proba(net, self.inputs(beats), self.cfg.deep.eval_batch_size, self.device)

    def record_entry(
        self, val: pd.DataFrame, proba_val: np.ndarray, test: pd.DataFrame, proba_test: np.ndarray
    ) -> dict[str, Any]:
        """:func:`~ecgops.training.record_level.record_block` of one cut."""
        from ecgops.training.record_level import record_block

        def cut(df: pd.DataFrame, proba: np.ndarray) -> tuple:
            return proba, labels(df), df["record"].astype(str).to_numpy()

        rec = self.cfg.multilead.record
        return record_block(cut(val, proba_val), cut(test, proba_test), rec, self.cfg.seed)

    def cross_validate(
        self,
        main: dict[str, pd.DataFrame] | None = None,
        main_test_proba: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Every grouped ptb12 fold (the single-lead folds' patients): beat and record level."""
        from ecgops.data.multilead_splits import iter_multilead_folds
        from ecgops.evaluation.metrics import classification_metrics
        from ecgops.training.record_level import record_cv_summary

        self.fold_scores, self.fold_records = [], []
        for k, (train, val, test) in enumerate(iter_multilead_folds(self.cfg)):
            fitted = self.fit(self.subsample(train), val, fold=k)
            proba = self.predict(fitted, test, timed=False)
            scores = classification_metrics(labels(test), proba)
            self.fold_scores.append(scores)
            self.fold_records.append(
                self.record_entry(val, self.predict(fitted, val, timed=False), test, proba)
            )
            log.info(
                "%s fold %d: balanced accuracy %.3f, record %.3f", self.name, k,
                scores["balanced_accuracy"], self.fold_records[-1]["balanced_accuracy"],
            )  # fmt: skip
        return {
            **self.summarise_cv(self.fold_scores),
            "record": record_cv_summary(self.fold_records),
        }

    def extra(self, fitted: Any) -> dict[str, Any]:
        """The deep facts, the leads, and the record-level entry (calibrated, as served)."""
        out = super().extra(fitted)
        out["model"]["params"] = self.net_kwargs()
        out["model"]["leads"] = self.leads
        out["model"]["lead_set"] = self.lead_set
        out["input"] = {"kind": "multilead", "leads": self.leads, "lead_set": self.lead_set}
        record = self.record_extra()
        if record is not None:
            out["record"] = record
        return out

    def record_extra(self) -> dict[str, Any] | None:
        """The record-level entry of the run's calibrated (as served) validation and test
        probabilities, logged as ``test_record_*`` metrics; None without both parts."""
        val, test = self.parts["val"], self.parts["test"]
        if not (len(val) and "val" in self.proba and "test" in self.proba):
            return None
        cal = self.calibrator.transform if self.calibrator is not None else (lambda p: p)
        block = self.record_entry(val, cal(self.proba["val"]), test, cal(self.proba["test"]))
        log_record_metrics(block)
        return block

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """Log the pyfunc model (named lead columns of its leads)."""
        import mlflow

        from ecgops.registry.pyfunc import log_beat_model
        from ecgops.training.engine import TorchBeatPredictor

        net, _ = fitted
        cfg = self.cfg
        predictor = TorchBeatPredictor(
            self.model_name,
            self.net_kwargs(),
            self.n_classes,
            net.state_dict(),
            batch_size=cfg.deep.eval_batch_size,
        )
        info = log_beat_model(
            predictor,
            BASE_TASK,
            cfg.class_names(BASE_TASK),
            example=self.inputs(parts["test"].iloc[:3]),
            calibrator=self.calibrator,
            leads=self.leads,
        )
        record["model_uri"] = info.model_uri
        record["mlflow_run_id"] = mlflow.active_run().info.run_id


def log_record_metrics(block: dict[str, Any]) -> None:
    """``test_record_*`` metrics on the active MLflow run (finite values only)."""
    import math

    import mlflow

    if mlflow.active_run() is None:
        return
    values = {
        "test_record_balanced_accuracy": block["balanced_accuracy"],
        "test_record_auroc": block["auroc"],
        "test_record_mean_balanced_accuracy": block["mean"]["balanced_accuracy"],
        "test_record_mean_auroc": block["mean"]["auroc"],
    }
    mlflow.log_metrics({k: float(v) for k, v in values.items() if math.isfinite(v)})


def train_multilead(cfg: Config, scheme: str, model_name: str, lead_set: str) -> dict[str, Any]:
    """Train, evaluate and log one multi-lead net on the ptb12 table.

    Args:
        cfg: configuration (``deep``, ``multilead``).
        scheme: ``beat`` or ``patient``.
        model_name: cnn, rescnn or transformer (a key of ``deep.archs``).
        lead_set: a key of ``multilead.lead_sets``.

    Returns:
        The metrics record written to ``outputs/metrics/ptb12/{scheme}/{net}-{leadset}.json``
        plus ``model_uri`` and ``mlflow_run_id``.

    Raises:
        DataError: the ptb12 table or split is missing or stale.
        ValueError: an unknown net or lead set.
    """
    nets = [n for n in MULTILEAD_NETS if n in cfg.deep.archs]
    if model_name not in nets:
        raise ValueError(f"unknown multi-lead net {model_name!r}; expected one of {nets}")
    record = MultileadRun(cfg, scheme, model_name, lead_set).run()
    log.info(
        "%s/%s/%s-%s: test balanced accuracy %.3f (record %.3f)",
        TASK, scheme, model_name, lead_set, record["test"]["balanced_accuracy"],
        record.get("record", {}).get("balanced_accuracy", float("nan")),
    )  # fmt: skip
    return record
