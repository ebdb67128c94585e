"""SimCLR-style contrastive learning: NT-Xent (InfoNCE) over two augmented views per beat.

The encoder and the projection head are trained *jointly*: both sit in one optimizer and the
loss is computed on the head's output, so the head receives gradients (the study's code left it
untrained; ``tests/training/test_contrastive.py`` checks that its weights move after one step).
Negatives are the other 2n - 2 views of the batch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ecgops.training.augment import Augmenter


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy (SimCLR's NT-Xent, InfoNCE with in-batch negatives).

    Views ``z1[i]`` and ``z2[i]`` are a positive pair; every other view in the batch is a
    negative. With cosine similarities ``s`` over the 2n L2-normalised views, the loss of anchor
    ``a`` with positive ``p`` is ``-log(exp(s_ap / t) / sum_{k != a} exp(s_ak / t))``; the result
    is the mean over all 2n anchors.

    Args:
        z1: projections of the first views (n, d).
        z2: projections of the second views (n, d).
        temperature: the softmax temperature t > 0.

    Returns:
        The scalar loss.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"expected two (n, d) tensors of equal shape, got {z1.shape}, {z2.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = functional.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return functional.cross_entropy(sim, targets)


class ContrastiveModel(nn.Module):
    """Encoder followed by the projection head: beats -> projections (n, projection_dim)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project beats (n, 187)."""
        return self.head(self.encoder(x))


def contrastive_step(
    model: ContrastiveModel,
    x: torch.Tensor,
    augment: Augmenter,
    optimizer: torch.optim.Optimizer,
    temperature: float,
    gen: torch.Generator | None = None,
) -> float:
    """One optimisation step on a batch: two views, NT-Xent, backward through head and encoder.

    Args:
        model: encoder + projection head (in train mode).
        x: a batch of beats (n, 187) on the model's device.
        augment: the view generator.
        optimizer: an optimizer over *all* of ``model``'s parameters.
        temperature: NT-Xent temperature.
        gen: optional generator for the augmentations.

    Returns:
        The batch loss.
    """
    v1, v2 = augment(x, gen), augment(x, gen)
    loss = nt_xent(model(v1), model(v2), temperature)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def contrastive_loss(
    model: ContrastiveModel,
    x: np.ndarray,
    augment: Augmenter,
    temperature: float,
    batch_size: int,
    device: torch.device,
    seed: int,
) -> float:
    """Mean NT-Xent of ``model`` on beats ``x`` with fixed-seed views (validation loss).

    The beats are put in a fixed random order first: in table order a batch holds consecutive
    beats of one record, whose near-identical negatives would make the loss incomparable to the
    shuffled training batches.
    """
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    total, count = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb = torch.tensor(x[order[start : start + batch_size]], device=device)
        if len(xb) < 2:
            continue
        v1, v2 = augment(xb, gen), augment(xb, gen)
        total += float(nt_xent(model(v1), model(v2), temperature)) * len(xb)
        count += len(xb)
    return total / max(count, 1)


@dataclass
class ContrastiveResult:
    """Outcome of :func:`train_contrastive` (the model holds the best-validation weights)."""

    best_epoch: int
    best_loss: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    train_beats_per_s: float = 0.0
    stopped_early: bool = False


def train_contrastive(
    model: ContrastiveModel,
    x_train: np.ndarray,
    x_val: np.ndarray,
    augment: Augmenter,
    *,
    epochs: int,
    patience: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    temperature: float,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> ContrastiveResult:
    """Train encoder and projection head jointly with NT-Xent; early stopping on val loss.

    Labels are not used. Each epoch shuffles the training beats, draws two fresh views per
    batch, and scores the validation beats with fixed-seed views; the weights with the lowest
    validation loss are kept.

    Args:
        model: encoder + projection head.
        x_train: training beats (n, 187) float32.
        x_val: validation beats (m, 187) float32.
        augment: the view generator.
        epochs, patience, lr, weight_decay, batch_size, temperature, seed: the budget.
        device: where to train.
        on_epoch: called as ``on_epoch(epoch, metrics)`` after each epoch (metrics hold
            ``train_loss``, ``val_loss``, ``seconds``); may add entries to ``metrics``.

    Returns:
        A :class:`ContrastiveResult`; ``model`` ends with the best-validation weights.
    """
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    result = ContrastiveResult(best_epoch=-1, best_loss=float("inf"))
    best_state = copy.deepcopy(model.state_dict())
    since_best, beats, t_train, t0 = 0, 0, 0.0, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        losses = []
        t_epoch = time.perf_counter()
        # drop a last batch of one: a single view has no negatives
        for start in range(0, len(order) - 1, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            xb = torch.as_tensor(x_train[idx], device=device)
            losses.append(contrastive_step(model, xb, augment, optimizer, temperature, gen))
            beats += len(idx)
        scheduler.step()
        t_train += time.perf_counter() - t_epoch
        val_loss = contrastive_loss(model, x_val, augment, temperature, batch_size, device, seed)
        metrics = {
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - t_epoch,
        }
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        result.history.append({"epoch": epoch, **metrics})
        if val_loss < result.best_loss:
            result.best_loss, result.best_epoch, since_best = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best >= patience:
                result.stopped_early = True
                break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    result.train_beats_per_s = beats / t_train if t_train > 0 else 0.0
    return result
