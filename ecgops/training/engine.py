"""One PyTorch training loop for every deep model (and the transfer track built on it).

A plain loop rather than PyTorch Lightning: the whole loop fits on a screen, it has no extra
dependency, and the two things that matter here are explicit — bit-exact resume from a
checkpoint and control over which parameters train (transfer strategies A/B/C).

* Device: CUDA when present, else CPU with every core (or ``deep.num_threads``).
* Data: beats are small (n x 187 float32), so the tensors sit in (device) memory and batches are
  index slices; a ``DataLoader`` with worker processes would only add copying on CPU. A part may
  carry the beats' context, ``(x, y, context)``: the batches are then ``(x, context)`` and the
  net is called as ``model(x, context=context)`` (the context nets, ``ecgops.models.nets``).
* Order: each epoch's shuffle (or balanced sample) comes from its own generator seeded by
  (seed, epoch), so a resumed epoch sees exactly the batches it would have seen.
* Imbalance: ``weighted_loss`` (inverse-frequency class weights in the cross-entropy),
  ``balanced_sampler`` (draw beats with probability 1/class count, with replacement) or ``none``.
* Model selection: balanced accuracy on the validation part, early stopping after ``patience``
  epochs without improvement; the model ends with its best weights.
* Schedule: ``cosine`` (per epoch, to zero at ``epochs``) or ``plateau`` (halve the rate when
  the validation score stalls).
* Checkpoints: after every epoch ``checkpoint_dir/last.pt`` holds model, optimizer, scheduler,
  scaler and RNG states, best weights and history; ``fit`` resumes from it when its fingerprint
  (model, initial weights, data, hyper-parameters) matches, and a finished run returns at once.
* Mixed precision (bf16, or fp16 with a gradient scaler) only on CUDA.

The loop's hyper-parameters are one :class:`LoopConfig` (``LoopConfig.from_deep(cfg)`` for the
``deep`` section; the transfer track builds its own), the run's plumbing (checkpoint folder,
trainable groups, device, callbacks) one :class:`FitOptions`. Checkpoint files are handled by
:mod:`ecgops.training.checkpoint`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgops.training import checkpoint
from ecgops.training.checkpoint import CHECKPOINT_NAME, LoopState
from ecgops.training.options import (
    IMBALANCE_MODES,
    SCHEDULES,
    FitOptions,
    FitResult,
    LoopConfig,
)
from ecgops.training.predictor import (
    TorchBeatPredictor,
    autocast_dtype,
    build_module,
    evaluate_batches,
    predict_proba,
)

log = logging.getLogger(__name__)

EPOCH_SEED_STRIDE = 1_000_003  # epoch generators: seed * stride + epoch
VAL_BATCH_FACTOR = 4  # validation batches default to this many training batches

__all__ = [
    "CHECKPOINT_NAME",
    "IMBALANCE_MODES",
    "SCHEDULES",
    "build_module",
    "FitOptions",
    "FitResult",
    "LoopConfig",
    "TorchBeatPredictor",
    "fit",
    "predict_proba",
    "select_device",
    "set_seed",
]


# ---- device and seeds ---------------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def select_device(prefer: str | None = None, num_threads: int | None = None) -> torch.device:
    """Pick the training device and set torch's CPU thread count.

    Args:
        prefer: ``"cuda"``, ``"cpu"`` or None (CUDA when available, else CPU).
        num_threads: CPU threads for torch (``deep.num_threads``); None: every available core.

    Returns:
        The device.
    """
    torch.set_num_threads(num_threads or available_cores())
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic algorithms.

    On CPU every op torch uses here is deterministic; on CUDA a few (scatter-add backward) are
    not, so non-deterministic ops warn instead of failing there.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


# ---- training ----------------------------------------------------------------------------------


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights ``n / (k * count)`` (0 for absent classes)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (as scikit-learn computes it)."""
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else float("nan")


Part = tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]
"""Beats and labels, ``(x, y)``, or with the beats' context, ``(x, y, context)``."""


class _Machine:
    """The optimisation machinery of one fit: tensors, loss, optimizer, schedule, scaler."""

    def __init__(
        self,
        model: nn.Module,
        loop: LoopConfig,
        groups: list[dict],
        n_classes: int,
        device: torch.device,
        train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
        val: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    ) -> None:
        x_tr, y_tr, c_tr = train
        self.model, self.loop, self.device = model, loop, device
        self.n_train = len(x_tr)
        self.x_va, self.y_va, self.c_va = val
        self.xt, self.yt = torch.from_numpy(x_tr).to(device), torch.from_numpy(y_tr).to(device)
        self.ct = None if c_tr is None else torch.from_numpy(c_tr).to(device)
        weights = class_weights(y_tr, n_classes)
        loss_weights = weights if loop.imbalance == "weighted_loss" else np.ones(n_classes)
        self.criterion = nn.CrossEntropyLoss(
            weight=torch.tensor(loss_weights, dtype=torch.float32, device=device)
        )
        self.sample_weights = (
            torch.from_numpy(weights[y_tr]) if loop.imbalance == "balanced_sampler" else None
        )
        self.optimizer = torch.optim.AdamW(groups, lr=loop.lr, weight_decay=loop.weight_decay)
        self.scheduler: Any
        if loop.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=max(loop.epochs, 1)
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode="max",
                factor=loop.plateau_factor,
                patience=loop.plateau_patience,
            )
        self.autocast_dtype = autocast_dtype(device, loop.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)

    @property
    def stateful(self) -> tuple[Any, Any, Any]:
        """Optimizer, scheduler and scaler (what a checkpoint saves beside the model)."""
        return self.optimizer, self.scheduler, self.scaler

    def train_epoch(self, epoch: int, desc: str) -> tuple[float, int]:
        """One pass over the epoch's batches; returns (summed loss, beats seen)."""
        loop, model = self.loop, self.model
        order = _epoch_order(self.n_train, loop.seed, epoch, self.sample_weights).to(self.device)
        model.train()
        _keep_frozen_norms(model)
        total_loss, seen = 0.0, 0
        bar = _progress(
            math.ceil(self.n_train / loop.batch_size), f"{desc} {epoch + 1}/{loop.epochs}"
        )
        for start in range(0, len(order), loop.batch_size):
            idx = order[start : start + loop.batch_size]
            if len(idx) < 2 <= seen:
                break  # a last batch of one beat breaks batch-norm statistics: skip it
            loss = self._step(self.xt[idx], self.yt[idx], None if self.ct is None else self.ct[idx])
            total_loss += loss * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
        bar.close()
        return total_loss, seen

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, cb: torch.Tensor | None) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits = self.model(xb) if cb is None else self.model(xb, context=cb)
            loss = self.criterion(logits, yb)
        self.scaler.scale(loss).backward()
        if self.loop.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], self.loop.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def validate(self) -> tuple[float, float, float]:
        """Validation balanced accuracy and loss, and the rate used this epoch (then schedule)."""
        loop = self.loop
        proba, val_loss = evaluate_batches(
            self.model,
            self.x_va,
            self.y_va,
            self.criterion,
            loop.eval_batch_size or VAL_BATCH_FACTOR * loop.batch_size,
            self.device,
            self.autocast_dtype,
            context=self.c_va,
        )
        score = balanced_accuracy(self.y_va, proba.argmax(axis=1))
        current_lr = self.optimizer.param_groups[0]["lr"]
        if loop.schedule == "cosine":
            self.scheduler.step()
        else:
            self.scheduler.step(score)
        return score, val_loss, current_lr


def _end_epoch(
    state: LoopState, model: nn.Module, loop: LoopConfig, record: dict, seen: int, train_s: float
) -> None:
    """Book one finished epoch: best weights, patience, history and counters."""
    score, val_loss = record["val_balanced_accuracy"], record["val_loss"]
    improved = score > state.best_score or (
        score == state.best_score and val_loss < state.best_loss
    )
    if improved:
        state.best_score, state.best_loss, state.best_epoch = score, val_loss, record["epoch"]
        state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state.bad_epochs = 0
    else:
        state.bad_epochs += 1
    state.history.append(record)
    state.epoch = record["epoch"] + 1
    state.train_seconds += train_s
    state.train_beats += seen
    state.stopped_early = state.bad_epochs >= loop.patience and state.epoch < loop.epochs
    state.finished = state.stopped_early or state.epoch >= loop.epochs


def fit(
    model: nn.Module,
    train: Part,
    val: Part,
    loop: LoopConfig,
    *,
    n_classes: int,
    options: FitOptions | None = None,
) -> FitResult:
    """Train ``model`` in place and leave it with its best-validation weights.

    Args:
        model: the net; called as ``model(x)`` on (batch, 187) float32 beats, returns logits
            (with context: ``model(x, context=c)``).
        train: (x, y) training beats (n, 187) float32 and labels (n,) int, or (x, y, context)
            with the beats' context (n, c) float32.
        val: validation beats and labels (early stopping and model selection), with their
            context when ``train`` has it.
        loop: the loop's hyper-parameters.
        n_classes: number of classes (labels are 0..n_classes-1).
        options: checkpoint folder, trainable groups, device, logging and callbacks.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: bad arrays or labels, an unknown mode, or no trainable parameter.
    """
    started = time.perf_counter()
    options = options or FitOptions()
    x_tr, y_tr = _check_xy(train[:2], n_classes, "train")
    x_va, y_va = _check_xy(val[:2], n_classes, "val")
    c_tr, c_va = _check_context(train, val)
    loop.check()
    set_seed(loop.seed)
    device = options.device or select_device()
    model.to(device)
    groups = _trainable_groups(model, options.param_groups)
    arrays = (x_tr, y_tr, x_va, y_va) + (() if c_tr is None else (c_tr, c_va))
    run_id = checkpoint.fingerprint(
        model, arrays, groups, loop.fingerprint_params(n_classes, device)
    )
    machine = _Machine(
        model, loop, groups, n_classes, device, (x_tr, y_tr, c_tr), (x_va, y_va, c_va)
    )

    state = LoopState()
    ckpt_path = Path(options.checkpoint_dir) / CHECKPOINT_NAME if options.checkpoint_dir else None
    if ckpt_path is not None and ckpt_path.exists():
        checkpoint.resume(ckpt_path, run_id, state, model, *machine.stateful)
    resumed_from = state.epoch
    mlflow = _mlflow_if_active(options.log_mlflow)
    desc = options.desc
    prefix = "epoch" if desc == "train" else f"{desc}_epoch"
    if mlflow is not None and state.history:
        for record in state.history:  # a resumed run carries the earlier epochs' curves
            mlflow.log_metrics(_epoch_metrics(record, prefix), step=record["epoch"])
    session_start = time.perf_counter() - started

    while not state.finished and state.epoch < loop.epochs:
        epoch = state.epoch
        record = _run_epoch(machine, state, model, loop, desc, session_start)
        session_start = 0.0
        if ckpt_path is not None:
            checkpoint.save(ckpt_path, run_id, state, model, *machine.stateful)
        if mlflow is not None:
            mlflow.log_metrics(_epoch_metrics(record, prefix), step=epoch)
        if options.on_epoch is not None:
            options.on_epoch(epoch, dict(record))

    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    if not state.history:
        state.seconds += time.perf_counter() - started
    return _fit_result(state, resumed_from)


def _run_epoch(
    machine: _Machine,
    state: LoopState,
    model: nn.Module,
    loop: LoopConfig,
    desc: str,
    session_start: float,
) -> dict[str, Any]:
    """Train and validate one epoch and book it in ``state``; its history record.

    ``session_start`` (the setup seconds of this session, counted once) is added to the
    loop's seconds with the epoch's own.
    """
    epoch = state.epoch
    epoch_start = time.perf_counter()
    total_loss, seen = machine.train_epoch(epoch, desc)
    train_seconds = time.perf_counter() - epoch_start
    score, val_loss, current_lr = machine.validate()
    record = {
        "epoch": epoch,
        "train_loss": total_loss / max(seen, 1),
        "val_loss": val_loss,
        "val_balanced_accuracy": score,
        "lr": current_lr,
        "seconds": time.perf_counter() - epoch_start,
    }
    _end_epoch(state, model, loop, record, seen, train_seconds)
    state.seconds += time.perf_counter() - epoch_start + session_start
    log.info(
        "%s epoch %d/%d: loss %.4f, val loss %.4f, val balanced accuracy %.4f",
        desc,
        epoch + 1,
        loop.epochs,
        record["train_loss"],
        val_loss,
        score,
    )
    return record


def _fit_result(state: LoopState, resumed_from: int) -> FitResult:
    """The :class:`FitResult` of a finished loop."""
    return FitResult(
        best_epoch=state.best_epoch,
        best_score=float(state.best_score) if state.history else float("nan"),
        history=list(state.history),
        seconds=state.seconds,
        train_beats_per_s=state.train_beats / state.train_seconds if state.train_seconds else 0.0,
        stopped_early=state.stopped_early,
        resumed_from=resumed_from,
    )


# ---- helpers ------------------------------------------------------------------------------------


def _check_xy(data: tuple[np.ndarray, np.ndarray], n_classes: int, part: str):
    x, y = data
    x = np.array(x, dtype=np.float32, order="C")  # a writable copy: torch shares its memory
    y = np.array(y, dtype=np.int64)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{part}: expected x (n, length) and y (n,), got {x.shape} and {y.shape}")
    if len(y) == 0:
        raise ValueError(f"{part}: no beats")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{part}: labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    if not np.isfinite(x).all():
        raise ValueError(f"{part}: NaN or infinite values in the beats")
    return x, y


def _check_context(train: Part, val: Part) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The parts' context (float32 copies), both or neither; checked against their beats."""
    if (len(train) == 3) != (len(val) == 3):
        raise ValueError("give the beats' context for both the train and the val part, or neither")
    if len(train) == 2:
        return None, None
    out = []
    for part, data in (("train", train), ("val", val)):
        context = np.array(data[2], dtype=np.float32, order="C")
        if context.ndim != 2 or len(context) != len(data[0]):
            raise ValueError(f"{part}: expected context (n, c) for {len(data[0])} beats, got "
                             f"{context.shape}")  # fmt: skip
        if not np.isfinite(context).all():
            raise ValueError(f"{part}: NaN or infinite values in the context")
        out.append(context)
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(
            f"train and val context widths differ: {out[0].shape[1]}, {out[1].shape[1]}"
        )
    return out[0], out[1]


def _trainable_groups(model: nn.Module, param_groups: list[dict] | None) -> list[dict]:
    if param_groups is None:
        param_groups = [{"params": list(model.parameters())}]
    groups = []
    for group in param_groups:
        params = [p for p in group["params"] if p.requires_grad]
        if params:
            groups.append({**group, "params": params})
    if not groups:
        raise ValueError("no trainable parameters (every parameter has requires_grad=False)")
    return groups


def _keep_frozen_norms(model: nn.Module) -> None:
    """Batch-norm layers whose parameters are all frozen stay in eval mode (fixed statistics)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _epoch_order(
    n: int, seed: int, epoch: int, sample_weights: torch.Tensor | None
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)
    if sample_weights is None:
        return torch.randperm(n, generator=gen)
    return torch.multinomial(sample_weights, n, replacement=True, generator=gen)


def _epoch_metrics(record: dict, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_{k}": float(v)
        for k, v in record.items()
        if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)
    }


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=None, unit="batch")


def _mlflow_if_active(log_mlflow: bool):
    mlflow = sys.modules.get("mlflow") if log_mlflow else None  # not imported: no active run
    return mlflow if mlflow is not None and mlflow.active_run() is not None else None
