"""One PyTorch training loop for every deep model (and the transfer track built on it).

A plain loop rather than PyTorch Lightning: the whole loop fits on a screen, it has no extra
dependency, and the two things that matter here are explicit — bit-exact resume from a
checkpoint and control over which parameters train (transfer strategies A/B/C).

* Device: CUDA when present, else CPU with every core (or ``deep.num_threads``).
* Data: beats are small (n x 187 float32), so the tensors sit in (device) memory and batches are
  index slices; a ``DataLoader`` with worker processes would only add copying on CPU.
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
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgops.io import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
IMBALANCE_MODES = ("weighted_loss", "balanced_sampler", "none")
SCHEDULES = ("cosine", "plateau")
PLATEAU_FACTOR = 0.5  # plateau schedule: multiply the rate by this when the score stalls
PLATEAU_PATIENCE = 1  # ... after this many epochs without improvement
EPOCH_SEED_STRIDE = 1_000_003  # epoch generators: seed * stride + epoch


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


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    best_epoch: int = -1
    best_score: float = -math.inf
    best_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    train_seconds: float = 0.0
    train_beats: int = 0


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


# ---- training -----------------------------------------------------------------------------------


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


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    patience: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    imbalance: str,
    seed: int,
    n_classes: int,
    checkpoint_dir: Path | None = None,
    param_groups: list[dict] | None = None,
    device: torch.device | None = None,
    log_mlflow: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    desc: str = "train",
    schedule: str = "cosine",
    amp: bool = True,
    grad_clip: float | None = None,
    eval_batch_size: int | None = None,
) -> FitResult:
    """Train ``model`` in place and leave it with its best-validation weights.

    Args:
        model: the net; called as ``model(x)`` on (batch, 187) float32 beats, returns logits.
        train: (x, y) training beats (n, 187) float32 and labels (n,) int.
        val: (x, y) validation beats and labels (early stopping and model selection).
        epochs: maximum epochs.
        patience: stop after this many epochs without a better validation balanced accuracy.
        lr: learning rate (AdamW), the default of groups that set none.
        weight_decay: AdamW weight decay.
        batch_size: training batch size.
        imbalance: ``weighted_loss``, ``balanced_sampler`` or ``none``.
        seed: seeds python/numpy/torch and every epoch's shuffle.
        n_classes: number of classes (labels are 0..n_classes-1).
        checkpoint_dir: where ``last.pt`` is written every epoch and resumed from.
        param_groups: optimizer groups (``{"params": [...], "lr": ...}``); default every
            parameter with ``requires_grad``. Frozen parameters are dropped from the groups and
            batch-norm layers whose parameters are all frozen keep their running statistics.
        device: default :func:`select_device`.
        log_mlflow: log per-epoch metrics to the active MLflow run (if one is active).
        on_epoch: called as ``on_epoch(epoch, record)`` after each epoch's checkpoint.
        desc: progress-bar label; also prefixes the MLflow metric names unless ``"train"``.
        schedule: ``cosine`` or ``plateau``.
        amp: mixed precision on CUDA (ignored on CPU).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        eval_batch_size: validation batch size (default ``4 * batch_size``).

    Returns:
        A :class:`FitResult`.
    """
    started = time.perf_counter()
    x_tr, y_tr = _check_xy(train, n_classes, "train")
    x_va, y_va = _check_xy(val, n_classes, "val")
    if imbalance not in IMBALANCE_MODES:
        raise ValueError(f"imbalance must be one of {IMBALANCE_MODES}, got {imbalance!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    set_seed(seed)
    device = device or select_device()
    model.to(device)
    groups = _trainable_groups(model, param_groups)
    fingerprint = _fingerprint(
        model,
        (x_tr, y_tr, x_va, y_va),
        groups,
        dict(
            epochs=epochs,
            patience=patience,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            imbalance=imbalance,
            seed=seed,
            n_classes=n_classes,
            schedule=schedule,
            grad_clip=grad_clip,
            amp=amp,
            device=device.type,
        ),
    )

    xt, yt = torch.from_numpy(x_tr).to(device), torch.from_numpy(y_tr).to(device)
    weights = class_weights(y_tr, n_classes)
    loss_weights = weights if imbalance == "weighted_loss" else np.ones(n_classes)
    criterion = nn.CrossEntropyLoss(
        weight=torch.tensor(loss_weights, dtype=torch.float32, device=device)
    )
    sample_weights = torch.from_numpy(weights[y_tr]) if imbalance == "balanced_sampler" else None

    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    scheduler: Any
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
    autocast_dtype = _autocast_dtype(device, amp)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)

    state = _State()
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if ckpt_path is not None and ckpt_path.exists():
        _resume(ckpt_path, fingerprint, state, model, optimizer, scheduler, scaler)
    resumed_from = state.epoch
    mlflow = _mlflow_if_active(log_mlflow)
    prefix = "epoch" if desc == "train" else f"{desc}_epoch"
    if mlflow is not None and state.history:
        for record in state.history:  # a resumed run carries the earlier epochs' curves
            mlflow.log_metrics(_epoch_metrics(record, prefix), step=record["epoch"])
    session_start = time.perf_counter() - started
    n_batches = math.ceil(len(x_tr) / batch_size)

    while not state.finished and state.epoch < epochs:
        epoch = state.epoch
        epoch_start = time.perf_counter()
        order = _epoch_order(len(x_tr), seed, epoch, sample_weights).to(device)
        model.train()
        _keep_frozen_norms(model)
        total_loss, seen = 0.0, 0
        bar = _progress(n_batches, f"{desc} {epoch + 1}/{epochs}")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2 <= seen:
                break  # a last batch of one beat breaks batch-norm statistics: skip it
            xb, yb = xt[idx], yt[idx]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
                loss = criterion(model(xb), yb)
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(
                    [p for g in optimizer.param_groups for p in g["params"]], grad_clip
                )
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - epoch_start

        proba, val_loss = _evaluate(
            model, x_va, y_va, criterion, eval_batch_size or 4 * batch_size, device, autocast_dtype
        )
        score = balanced_accuracy(y_va, proba.argmax(axis=1))
        current_lr = optimizer.param_groups[0]["lr"]
        if schedule == "cosine":
            scheduler.step()
        else:
            scheduler.step(score)

        improved = score > state.best_score or (
            score == state.best_score and val_loss < state.best_loss
        )
        if improved:
            state.best_score, state.best_loss, state.best_epoch = score, val_loss, epoch
            state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state.bad_epochs = 0
        else:
            state.bad_epochs += 1
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "val_loss": val_loss,
            "val_balanced_accuracy": score,
            "lr": current_lr,
            "seconds": time.perf_counter() - epoch_start,
        }
        state.history.append(record)
        state.epoch = epoch + 1
        state.train_seconds += train_seconds
        state.train_beats += seen
        state.stopped_early = state.bad_epochs >= patience and state.epoch < epochs
        state.finished = state.stopped_early or state.epoch >= epochs
        state.seconds += time.perf_counter() - epoch_start + session_start
        session_start = 0.0
        log.info(
            "%s epoch %d/%d: loss %.4f, val loss %.4f, val balanced accuracy %.4f",
            desc,
            epoch + 1,
            epochs,
            record["train_loss"],
            val_loss,
            score,
        )
        if ckpt_path is not None:
            _save(ckpt_path, fingerprint, state, model, optimizer, scheduler, scaler)
        if mlflow is not None:
            mlflow.log_metrics(_epoch_metrics(record, prefix), step=epoch)
        if on_epoch is not None:
            on_epoch(epoch, dict(record))

    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    if not state.history:
        state.seconds += time.perf_counter() - started
    return FitResult(
        best_epoch=state.best_epoch,
        best_score=float(state.best_score) if state.history else float("nan"),
        history=list(state.history),
        seconds=state.seconds,
        train_beats_per_s=state.train_beats / state.train_seconds if state.train_seconds else 0.0,
        stopped_early=state.stopped_early,
        resumed_from=resumed_from,
    )


def predict_proba(
    model: nn.Module, x: np.ndarray, batch_size: int, device: torch.device | None = None
) -> np.ndarray:
    """Class probabilities of ``model`` for beats ``x`` (n, 187), computed in batches.

    Args:
        model: the net (its train/eval mode is restored afterwards).
        x: beats, float32 (n, 187).
        batch_size: beats per forward pass.
        device: default: where the model's parameters are.

    Returns:
        float64 probabilities, shape (n, n_classes).
    """
    device = device or next(model.parameters()).device
    model.to(device)
    proba, _ = _evaluate(
        model,
        np.asarray(x, dtype=np.float32),
        None,
        None,
        batch_size,
        device,
        _autocast_dtype(device, True),
    )
    return proba


# ---- the registry's torch predictor -------------------------------------------------------------


class TorchBeatPredictor:
    """A picklable predictor (``predict_proba``) that rebuilds a net on CPU from its weights.

    Pickles only the architecture name, its arguments and the weights (CPU tensors), so the
    MLflow pyfunc model stays small and independent of the training device.

    Args:
        arch: a registered net name (``ecgops.models.nets.NETS``) or ``"module:function"``
            returning a module when called as ``function(n_classes=..., **arch_kwargs)``.
        arch_kwargs: architecture parameters.
        n_classes: number of classes.
        state_dict: trained weights.
        batch_size: beats per forward pass at prediction time.
    """

    def __init__(
        self,
        arch: str,
        arch_kwargs: dict[str, Any],
        n_classes: int,
        state_dict: dict[str, torch.Tensor],
        batch_size: int = 1024,
    ) -> None:
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs)
        self.n_classes = int(n_classes)
        self.state_dict = {k: v.detach().cpu().clone() for k, v in state_dict.items()}
        self.batch_size = int(batch_size)
        self._net: nn.Module | None = None

    def build(self) -> nn.Module:
        """The net with its trained weights, on CPU in eval mode (built once, then cached)."""
        if self._net is None:
            net = build_module(self.arch, self.n_classes, self.arch_kwargs)
            net.load_state_dict(self.state_dict)
            self._net = net.eval()
        return self._net

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) for beats ``x`` (n, 187)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected beats of shape (n, 187), got {x.shape}")
        return predict_proba(self.build(), x, self.batch_size, torch.device("cpu"))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_net"] = None
        return state


def build_module(arch: str, n_classes: int, arch_kwargs: dict[str, Any]) -> nn.Module:
    """Build a registered net, or call ``"module:function"`` with ``n_classes`` and kwargs."""
    if ":" in arch:
        module_name, func_name = arch.split(":", 1)
        builder = getattr(importlib.import_module(module_name), func_name)
        return builder(n_classes=n_classes, **arch_kwargs)
    from ecgops.models.nets import build_net

    return build_net(arch, n_classes, **arch_kwargs)


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


def _autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _evaluate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    criterion: nn.Module | None,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> tuple[np.ndarray, float]:
    was_training = model.training
    model.eval()
    probas, loss_sum = [], 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                xb = torch.tensor(x[start : start + batch_size], device=device)
                with torch.autocast(
                    device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                ):
                    logits = model(xb).float()
                if criterion is not None and y is not None:
                    yb = torch.tensor(y[start : start + batch_size], device=device)
                    loss_sum += float(_summed_loss(criterion, logits, yb))
                probas.append(torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64))
    finally:
        model.train(was_training)
    proba = np.concatenate(probas) if probas else np.zeros((0, 0))
    if y is None or criterion is None:
        return proba, float("nan")
    weight = criterion.weight
    total = (
        float(weight[torch.from_numpy(y).to(weight.device)].sum())
        if weight is not None
        else float(len(y))
    )
    return proba, loss_sum / max(total, 1e-12)


def _summed_loss(criterion: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The criterion's loss summed over the batch (weighted means combine exactly)."""
    return nn.functional.cross_entropy(logits, y, weight=criterion.weight, reduction="sum")


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


def _fingerprint(
    model: nn.Module,
    arrays: tuple[np.ndarray, ...],
    groups: list[dict],
    hparams: dict[str, Any],
) -> str:
    """Identity of a training run: checkpoints of another run are never resumed."""
    h = hashlib.sha256()
    h.update(repr(model).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for name, p in model.named_parameters():
        h.update(f"{name}:{p.requires_grad}".encode())
    for arr in arrays:
        h.update(np.ascontiguousarray(arr).tobytes())
    ids = {id(p): name for name, p in model.named_parameters()}
    for group in groups:
        names = [ids.get(id(p), "?") for p in group["params"]]
        extras = {k: v for k, v in group.items() if k != "params"}
        h.update(repr((names, sorted(extras.items()))).encode())
    h.update(repr(sorted(hparams.items())).encode())
    return h.hexdigest()


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save(path, fingerprint, state, model, optimizer, scheduler, scaler) -> None:
    payload = {
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _rng_states(),
        "state": {k: v for k, v in vars(state).items() if k != "best_state"},
        "best_state": state.best_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _resume(path, fingerprint, state, model, optimizer, scheduler, scaler) -> None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint means: start again
        log.warning("%s: unreadable checkpoint (%s); training from scratch", path, exc)
        return
    if payload.get("fingerprint") != fingerprint:
        log.warning(
            "%s: checkpoint of another run (model, data or params differ); training from scratch",
            path,
        )
        return
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    scaler.load_state_dict(payload["scaler"])
    for key, value in payload["state"].items():
        setattr(state, key, value)
    state.best_state = payload["best_state"]
    _set_rng_states(payload["rng"])
    log.info("%s: resuming after epoch %d", path, state.epoch)
