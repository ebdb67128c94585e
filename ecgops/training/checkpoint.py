"""Checkpoints of the training loop: the loop's state, its fingerprint, save and resume.

After every epoch :func:`save` writes model, optimizer, scheduler, scaler and RNG states, the
best weights and the history to ``last.pt`` (atomically); :func:`resume` restores them when the
checkpoint's fingerprint (model, initial weights, data, hyper-parameters) matches the run's, so
a killed run continues bit-exactly and a checkpoint of another run is never resumed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgops.io import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


@dataclass
class LoopState:
    """What the loop carries from epoch to epoch (and what a checkpoint restores)."""

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


def fingerprint(
    model: nn.Module,
    arrays: tuple[np.ndarray, ...],
    groups: list[dict],
    hparams: dict[str, Any],
) -> str:
    """Identity of a training run: checkpoints of another run are never resumed.

    Args:
        model: the net before training (architecture, initial weights, trainable flags).
        arrays: the training and validation arrays.
        groups: the optimizer's parameter groups.
        hparams: the loop's hyper-parameters.

    Returns:
        A SHA-256 hex digest.
    """
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


def save(
    path: Path,
    run_fingerprint: str,
    state: LoopState,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
) -> None:
    """Write the loop's full state to ``path`` (atomically).

    Args:
        path: the checkpoint file.
        run_fingerprint: :func:`fingerprint` of the run.
        state: the loop state.
        model, optimizer, scheduler, scaler: their ``state_dict`` is saved.
    """
    payload = {
        "fingerprint": run_fingerprint,
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


def resume(
    path: Path,
    run_fingerprint: str,
    state: LoopState,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
) -> None:
    """Restore the loop from ``path`` in place, if it is a readable checkpoint of this run.

    A corrupt checkpoint, or one of another run (other fingerprint), is ignored with a warning:
    the run then trains from scratch.

    Args:
        path: the checkpoint file.
        run_fingerprint: :func:`fingerprint` of the run.
        state: filled from the checkpoint.
        model, optimizer, scheduler, scaler: loaded from the checkpoint.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint means: start again
        log.warning("%s: unreadable checkpoint (%s); training from scratch", path, exc)
        return
    if payload.get("fingerprint") != run_fingerprint:
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
