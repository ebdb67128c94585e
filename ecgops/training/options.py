"""Parameter objects of the training loop: what it learns (:class:`LoopConfig`), how one call
runs (:class:`FitOptions`) and what it did (:class:`FitResult`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ecgops.config import Config

IMBALANCE_MODES = ("weighted_loss", "balanced_sampler", "none")
SCHEDULES = ("cosine", "plateau")


@dataclass
class FitResult:
    """What a call to :func:`fit` did.

    Attributes:
        best_epoch: epoch (0-based) whose weights the model ends with.
        best_score: its validation balanced accuracy.
        history: one dict per epoch (train_loss, val_loss, val_balanced_accuracy, lr, seconds).
        seconds: wall time of the whole fit, summed over resumed sessions.
        train_beats_per_s: training beats processed per second of training steps.
        stopped_early: True when patience ran out before ``epochs``.
        resumed_from: epoch count found in the checkpoint (0 when started fresh).
    """

    best_epoch: int
    best_score: float
    history: list[dict]
    seconds: float
    train_beats_per_s: float
    stopped_early: bool
    resumed_from: int = 0


@dataclass(frozen=True)
class LoopConfig:
    """The training loop's hyper-parameters (what the checkpoint fingerprint covers).

    Attributes:
        epochs: maximum epochs.
        patience: stop after this many epochs without a better validation balanced accuracy.
        lr: learning rate (AdamW), the default of groups that set none.
        weight_decay: AdamW weight decay.
        batch_size: training batch size.
        imbalance: ``weighted_loss``, ``balanced_sampler`` or ``none``.
        seed: seeds python/numpy/torch and every epoch's shuffle.
        schedule: ``cosine`` or ``plateau``.
        amp: mixed precision on CUDA (ignored on CPU).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        eval_batch_size: validation batch size (None: ``VAL_BATCH_FACTOR * batch_size``).
        plateau_factor: ``plateau``: multiply the rate by this when the score stalls.
        plateau_patience: ``plateau``: ... after this many epochs without improvement.
    """

    epochs: int
    patience: int
    lr: float
    weight_decay: float
    batch_size: int
    imbalance: str
    seed: int
    schedule: str = "cosine"
    amp: bool = True
    grad_clip: float | None = None
    eval_batch_size: int | None = None
    plateau_factor: float | None = None
    plateau_patience: int | None = None

    @classmethod
    def from_deep(cls, cfg: Config) -> LoopConfig:
        """The loop of ``params.yaml`` ``deep`` (apply ``deep.per_task`` first).

        Args:
            cfg: configuration.

        Returns:
            The loop settings of the deep models.
        """
        d = cfg.deep
        return cls(
            epochs=d.epochs,
            patience=d.patience,
            lr=d.lr,
            weight_decay=d.weight_decay,
            batch_size=d.batch_size,
            imbalance=d.imbalance,
            seed=cfg.seed,
            schedule=d.schedule,
            amp=d.amp,
            grad_clip=d.grad_clip,
            eval_batch_size=d.eval_batch_size,
            plateau_factor=d.plateau_factor,
            plateau_patience=d.plateau_patience,
        )

    def replace(self, **changes: Any) -> LoopConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Refuse unknown modes and a plateau schedule without its settings.

        Raises:
            ValueError: the offending field.
        """
        if self.imbalance not in IMBALANCE_MODES:
            raise ValueError(f"imbalance must be one of {IMBALANCE_MODES}, got {self.imbalance!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "plateau" and (
            self.plateau_factor is None or self.plateau_patience is None
        ):
            raise ValueError("schedule 'plateau' needs plateau_factor and plateau_patience")

    def fingerprint_params(self, n_classes: int, device: torch.device) -> dict[str, Any]:
        """The hyper-parameters that identify a run's checkpoint."""
        params: dict[str, Any] = dict(
            epochs=self.epochs,
            patience=self.patience,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            imbalance=self.imbalance,
            seed=self.seed,
            n_classes=n_classes,
            schedule=self.schedule,
            grad_clip=self.grad_clip,
            amp=self.amp,
            device=device.type,
        )
        if self.schedule == "plateau":
            params.update(
                plateau_factor=self.plateau_factor, plateau_patience=self.plateau_patience
            )
        return params


@dataclass(frozen=True)
class FitOptions:
    """How one :func:`fit` call runs (not what it learns).

    Attributes:
        checkpoint_dir: where ``last.pt`` is written every epoch and resumed from.
        param_groups: optimizer groups (``{"params": [...], "lr": ...}``); default every
            parameter with ``requires_grad``. Frozen parameters are dropped from the groups and
            batch-norm layers whose parameters are all frozen keep their running statistics.
        device: default :func:`select_device`.
        log_mlflow: log per-epoch metrics to the active MLflow run (if one is active).
        on_epoch: called as ``on_epoch(epoch, record)`` after each epoch's checkpoint.
        desc: progress-bar label; also prefixes the MLflow metric names unless ``"train"``.
    """

    checkpoint_dir: Path | None = None
    param_groups: list[dict] | None = None
    device: torch.device | None = None
    log_mlflow: bool = True
    on_epoch: Callable[[int, dict], None] | None = None
    desc: str = "train"
