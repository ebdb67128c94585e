"""Fine-tuning a pretrained encoder on PTB (healthy vs MI) with strategies A, B and C.

- ``A``: the encoder is frozen (weights and batch-norm statistics); only a new linear head trains.
- ``B``: encoder and new head train together.
- ``C``: head first with the encoder frozen for ``phase_one_fraction`` of the epochs, then
  everything with the learning rate times ``finetune_lr_ratio``.
- ``scratch``: the same architecture from random initialisation, trained like ``B`` (baseline).

Each fine-tune is one MLflow run in ``ecgops-ptb`` tagged with its lineage (the pretraining
run id, the encoder file and its sha256), run by the shared template
(:class:`~ecgops.training.run.TrainingRun`); its evaluation is ``transfer-{encoder}-{strategy}``
(``transfer-scratch``) and its model is logged as a pyfunc. When the split has grouped folds
(PTB's patient scheme) the same recipe is also run on every fold (mean and std of the test
metrics).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecgops.config import Config
from ecgops.models.encoder import Classifier, Encoder
from ecgops.schema import labels, signals
from ecgops.training.options import LoopConfig
from ecgops.training.run import MIN_SECONDS, TrainingRun

log = logging.getLogger(__name__)

TASK = "ptb"
ENCODER_KINDS = ("supervised", "contrastive", "scratch")
STRATEGIES = ("A", "B", "C")


@dataclass(frozen=True)
class Phase:
    """One stage of a fine-tuning recipe."""

    name: str
    train_encoder: bool
    epochs: int
    lr: float


def strategy_phases(
    strategy: str, epochs: int, lr: float, phase_one_fraction: float, lr_ratio: float
) -> list[Phase]:
    """The phases of a strategy.

    Args:
        strategy: ``A``, ``B`` or ``C``.
        epochs: total epoch budget.
        lr: base learning rate.
        phase_one_fraction: C's share of epochs with the encoder frozen.
        lr_ratio: C's phase-two learning rate factor.

    Returns:
        The phases, in order.
    """
    if strategy == "A":
        return [Phase("head", False, epochs, lr)]
    if strategy == "B":
        return [Phase("all", True, epochs, lr)]
    if strategy == "C":
        first = min(max(1, round(epochs * phase_one_fraction)), max(epochs - 1, 1))
        return [
            Phase("head", False, first, lr),
            Phase("all", True, max(epochs - first, 1), lr * lr_ratio),
        ]
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def run_phases(
    model: Classifier,
    phases: list[Phase],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    loop: LoopConfig,
    *,
    n_classes: int,
    device: torch.device | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    on_phase_end: Callable[[Phase, Classifier], None] | None = None,
) -> list[Any]:
    """Train ``model`` through ``phases`` with the engine's ``fit`` (best-val weights kept).

    Args:
        model: encoder + head.
        phases: from :func:`strategy_phases`.
        train, val: (beats, labels) arrays.
        loop: the loop settings; each phase sets its own ``epochs`` and ``lr``.
        n_classes: number of classes.
        device: where to train.
        on_epoch: called as ``on_epoch(global_epoch, metrics)``; ``metrics['phase']`` names the
            phase (epochs count on across phases).
        on_phase_end: called with each finished phase and the model.

    Returns:
        The engine's ``FitResult`` of every phase.
    """
    from ecgops.training.engine import FitOptions, fit

    results, offset = [], 0
    for phase in phases:
        model.freeze_encoder(not phase.train_encoder)

        def hook(epoch: int, metrics: dict, _offset: int = offset, _phase: Phase = phase) -> None:
            if on_epoch is not None:
                on_epoch(_offset + epoch, {**metrics, "phase": _phase.name})

        options = FitOptions(
            device=device, log_mlflow=False, on_epoch=hook, desc=f"finetune-{phase.name}"
        )
        loop_phase = loop.replace(epochs=phase.epochs, lr=phase.lr)
        res = fit(model, train, val, loop_phase, n_classes=n_classes, options=options)
        results.append(res)
        offset += len(res.history)
        if on_phase_end is not None:
            on_phase_end(phase, model)
    model.freeze_encoder(False)
    return results


CLASSIFIER_BUILDER = "ecgops.models.encoder:build_classifier"


def make_predictor(model: Classifier, batch_size: int) -> Any:
    """The registry predictor of a fine-tuned model (rebuilt from its weights on CPU)."""
    from ecgops.models.encoder import encoder_arch
    from ecgops.training.engine import TorchBeatPredictor

    arch_kwargs = {"arch": encoder_arch(model.encoder), **model.encoder.hparams}
    return TorchBeatPredictor(
        CLASSIFIER_BUILDER, arch_kwargs, model.head.out_features, model.state_dict(), batch_size
    )


def result_name(encoder: str, strategy: str | None) -> str:
    """Metrics name of a fine-tune: ``transfer-{encoder}-{strategy}`` or ``transfer-scratch``."""
    return "transfer-scratch" if encoder == "scratch" else f"transfer-{encoder}-{strategy}"


def _check(encoder: str, strategy: str | None) -> str:
    if encoder not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODER_KINDS}")
    if encoder == "scratch":
        if strategy not in (None, "B"):
            raise ValueError("a scratch baseline trains everything: strategy must be None or 'B'")
        return "B"
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return strategy


def _initial_encoder(cfg: Config, encoder: str) -> tuple[Encoder, dict[str, str]]:
    """The starting encoder (pretrained on MIT-BIH's :data:`~ecgops.training.pretrain.SCHEME`
    split, whatever the PTB scheme) and its lineage tags."""
    from ecgops.models.encoder import build_encoder, file_sha256, load_encoder
    from ecgops.paths import encoder_file
    from ecgops.training.pretrain import SCHEME

    if encoder == "scratch":
        return build_encoder(cfg), {"encoder": "scratch"}
    path = encoder_file(cfg, encoder, SCHEME)
    enc, meta = load_encoder(path)
    return enc, {
        "encoder": encoder,
        "pretrained_run_id": str(meta.get("run_id", "")),
        "encoder_path": str(path),
        "encoder_sha256": file_sha256(path),
        "pretrain_scheme": str(meta.get("scheme", SCHEME)),
    }


def train_recipe(
    cfg: Config,
    start: Encoder,
    strategy: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    device: torch.device | None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> tuple[Classifier, list[Any]]:
    """A fresh classifier on a copy of ``start`` trained with ``strategy`` (seeded).

    Args:
        cfg: configuration (``transfer`` budget, ``deep.imbalance``).
        start: the starting encoder (left untouched).
        strategy: ``A``, ``B`` or ``C``.
        train, val: (beats, labels).
        device: where to train.
        on_epoch: per-epoch callback (global epoch, metrics).

    Returns:
        The trained classifier and the per-phase fit results.
    """
    from ecgops.training.engine import set_seed

    tc = cfg.transfer
    set_seed(cfg.seed)
    n_classes = len(cfg.class_names(TASK))
    model = Classifier(copy.deepcopy(start), n_classes)
    phases = strategy_phases(
        strategy, tc.finetune_epochs, tc.lr, tc.phase_one_fraction, tc.finetune_lr_ratio
    )
    results = run_phases(
        model,
        phases,
        train,
        val,
        finetune_loop(cfg),
        n_classes=n_classes,
        device=device,
        on_epoch=on_epoch,
    )
    return model, results


def finetune_loop(cfg: Config) -> LoopConfig:
    """The fine-tunes' loop: ``transfer`` budget and batch size, ``deep.imbalance``.

    Each phase of a strategy replaces ``epochs`` and ``lr`` (:func:`strategy_phases`).
    """
    tc = cfg.transfer
    return LoopConfig(
        epochs=tc.finetune_epochs,
        patience=tc.patience,
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        batch_size=tc.finetune_batch_size,
        imbalance=cfg.deep.imbalance,
        seed=cfg.seed,
    )


class FinetuneRun(TrainingRun):
    """One fine-tune on PTB (the :class:`~ecgops.training.run.TrainingRun` hooks).

    Args:
        cfg: configuration.
        scheme: ``beat`` or ``patient``.
        encoder: ``supervised``, ``contrastive`` or ``scratch``.
        strategy: ``A``, ``B`` or ``C`` (None or ``B`` for scratch).
    """

    family = "transfer"
    reuse_identical_fold = True

    def __init__(self, cfg: Config, scheme: str, encoder: str, strategy: str | None) -> None:
        super().__init__(cfg, TASK, scheme)
        self.strategy = _check(encoder, strategy)
        self.encoder_kind = encoder
        self._name = result_name(encoder, strategy)
        self.lineage: dict[str, str] = {}

    def cv_enabled(self) -> bool:
        """When the split has grouped folds and ``transfer.cv`` is on."""
        return self.cfg.transfer.cv and super().cv_enabled()

    @property
    def name(self) -> str:
        """``transfer-{encoder}-{strategy}`` or ``transfer-scratch``."""
        return self._name

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """The starting encoder with its lineage, and the device."""
        from ecgops.training.engine import select_device

        self.start_encoder, self.lineage = _initial_encoder(self.cfg, self.encoder_kind)
        self.device = select_device(num_threads=self.cfg.deep.num_threads)

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """Encoder, strategy, the transfer section, imbalance and device."""
        return {
            "encoder": self.encoder_kind,
            "strategy": self.strategy,
            "transfer": self.cfg.transfer.model_dump(mode="json"),
            "imbalance": self.cfg.deep.imbalance,
            "device": str(self.device),
        }

    def tags(self) -> dict[str, str]:
        """Stage, family, strategy and the encoder's lineage."""
        return {
            "stage": "finetune",
            "family": self.family,
            "strategy": self.strategy,
            **self.lineage,
        }

    def start(self, parts: dict[str, pd.DataFrame]) -> None:
        """The starting encoder's embedding figure."""
        stage = "init" if self.encoder_kind == "scratch" else "before-finetune"
        self._figure(self.start_encoder, parts["test"], stage, self.device)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """(classifier, per-phase results); the main run logs its epochs to MLflow."""
        import mlflow

        def on_epoch(epoch: int, metrics: dict) -> None:
            mlflow.log_metrics(
                {k: float(v) for k, v in metrics.items() if _is_number(v)}, step=epoch
            )

        return train_recipe(
            self.cfg,
            self.start_encoder,
            self.strategy,
            (signals(train), labels(train)),
            (signals(val), labels(val)),
            self.device,
            on_epoch if fold is None else None,
        )

    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """Probabilities in batches of ``transfer.batch_size``."""
        from ecgops.training.engine import predict_proba

        model, _ = fitted
        return predict_proba(model, signals(beats), self.cfg.transfer.batch_size, self.device)

    def fit_timing(self, fitted: Any, seconds: float, n_train: int) -> dict[str, float]:
        """Wall time of the recipe, training speed over its phases."""
        _, results = fitted
        beats = sum(r.train_beats_per_s * r.seconds for r in results)
        return {
            "fit_seconds": seconds,
            "train_beats_per_s": beats / max(sum(r.seconds for r in results), MIN_SECONDS),
        }

    def summarise_cv(self, per_fold: list[dict[str, float]]) -> dict[str, Any]:
        """Mean and population std of balanced accuracy, accuracy, macro F1 and AUROC."""
        return _cv_summary(per_fold)

    def extra(self, fitted: Any) -> dict[str, Any]:
        """Lineage, strategy, the phases and the per-fold metrics."""
        _, results = fitted
        return {
            "transfer": {
                **self.lineage,
                "strategy": self.strategy,
                "phases": [
                    {
                        "best_epoch": r.best_epoch,
                        "epochs_run": len(r.history),
                        "stopped_early": r.stopped_early,
                    }
                    for r in results
                ],
                "device": str(self.device),
                "cv_folds": [{"fold": k, **m} for k, m in enumerate(self.fold_scores)],
            }
        }

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """Log the pyfunc model and the fine-tuned encoder's embedding figure."""
        from ecgops.registry.pyfunc import log_beat_model

        model, _ = fitted
        tc = self.cfg.transfer
        x_te = signals(parts["test"])
        predictor = make_predictor(model.cpu(), tc.batch_size)
        log_beat_model(
            predictor, TASK, self.cfg.class_names(TASK), x_te[:3], calibrator=self.calibrator
        )
        self._figure(model.encoder, parts["test"], "after-finetune", torch.device("cpu"))

    def _figure(self, encoder: Encoder, test: pd.DataFrame, stage: str, device: Any) -> None:
        from ecgops.evaluation.embeddings import embedding_figure

        embedding_figure(
            self.cfg,
            encoder,
            signals(test),
            labels(test),
            task=TASK,
            scheme=self.scheme,
            name=self.name,
            stage=stage,
            device=device,
        )

    def summary(self, record: dict[str, Any], run: Any) -> dict[str, Any]:
        """The fine-tune's summary (see :func:`finetune`)."""
        return {
            "run_id": run.info.run_id,
            "name": self.name,
            "scheme": self.scheme,
            "encoder": self.encoder_kind,
            "strategy": self.strategy,
            "lineage": self.lineage,
            "test": record["test"],
            "val": record.get("val", {}),
            "cv": record.get("cv"),
            "seconds": record["timing"]["fit_seconds"],
            "epochs_run": sum(p["epochs_run"] for p in record["transfer"]["phases"]),
        }


def finetune(cfg: Config, scheme: str, encoder: str, strategy: str | None = None) -> dict[str, Any]:
    """Fine-tune (or train from scratch) on PTB and write its evaluation and model.

    Args:
        cfg: configuration.
        scheme: ``beat`` or ``patient`` (the PTB split); every scheme starts from the encoder
            pretrained on MIT-BIH's patient split (``models/encoders/{encoder}-patient.pt``,
            :data:`~ecgops.training.pretrain.SCHEME`).
        encoder: ``supervised``, ``contrastive`` or ``scratch``.
        strategy: ``A``, ``B`` or ``C`` (None or ``B`` for scratch).

    Returns:
        Summary: ``run_id``, ``name``, ``scheme``, ``encoder``, ``strategy``, lineage,
        ``test`` and ``val`` metrics, ``cv`` (when the split has folds), ``seconds``,
        ``epochs_run``.

    Raises:
        ValueError: unknown encoder/strategy.
        DataError: missing PTB table/split or encoder file.
    """
    return FinetuneRun(cfg, scheme, encoder, strategy).run()


def _cv_summary(folds: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"folds": len(folds)}
    for key in ("balanced_accuracy", "accuracy", "macro_f1", "auroc"):
        vals = np.array([f[key] for f in folds], dtype=float)
        out[f"{key}_mean"] = float(np.nanmean(vals))
        out[f"{key}_std"] = float(np.nanstd(vals))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.floating | np.integer) and np.isfinite(float(v))
