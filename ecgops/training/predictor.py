"""Prediction with a trained net: batched probabilities and the registry's picklable predictor.

:func:`predict_proba` and the validation pass of the training loop share :func:`evaluate_batches`
(inference mode, optional autocast, softmax in float64).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch
from torch import nn


def predict_proba(
    model: nn.Module,
    x: np.ndarray,
    batch_size: int,
    device: torch.device | None = None,
    context: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities of ``model`` for beats ``x`` (n, 187), computed in batches.

    Args:
        model: the net (its train/eval mode is restored afterwards).
        x: beats, float32 (n, 187).
        batch_size: beats per forward pass.
        device: default: where the model's parameters are.
        context: the beats' context (n, c) for a context net (``model(x, context=...)``).

    Returns:
        float64 probabilities, shape (n, n_classes).
    """
    device = device or next(model.parameters()).device
    model.to(device)
    proba, _ = evaluate_batches(
        model,
        np.asarray(x, dtype=np.float32),
        None,
        None,
        batch_size,
        device,
        autocast_dtype(device, True),
        context=None if context is None else np.asarray(context, dtype=np.float32),
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
        context_normalise: for a context net (``arch_kwargs["context_dim"]``): the
            ``context.normalise`` it was trained with. Its input rows are then the beats and
            their raw context, (n, 187 + c), and the context is normalised here by
            :func:`ecgops.features.context.normalise_context`, as in training.
    """

    def __init__(
        self,
        arch: str,
        arch_kwargs: dict[str, Any],
        n_classes: int,
        state_dict: dict[str, torch.Tensor],
        batch_size: int = 1024,
        context_normalise: str | None = None,
    ) -> None:
        self.arch = arch
        self.context_normalise = context_normalise
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
        """Class probabilities (n, n_classes) for beats ``x`` (n, 187), or (n, 187 + c) with
        their raw context for a context net."""
        from ecgops.schema import BEAT_LEN

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected beats of shape (n, 187), got {x.shape}")
        normalise = getattr(self, "context_normalise", None)  # pickled before context
        context = None
        if normalise is not None:
            from ecgops.features.context import normalise_context

            x, context = x[:, :BEAT_LEN], normalise_context(x[:, BEAT_LEN:], normalise)
        return predict_proba(self.build(), x, self.batch_size, torch.device("cpu"), context)

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


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision dtype: bf16 (else fp16) on CUDA when ``amp``; None (float32) else."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def evaluate_batches(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    criterion: nn.Module | None,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    context: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Probabilities of ``model`` for ``x`` in batches, and the weighted mean loss given ``y``.

    Args:
        model: the net (its train/eval mode is restored afterwards).
        x: beats, float32 (n, 187).
        y: labels, or None (no loss).
        criterion: the training loss (its class weights weight the mean), or None.
        batch_size: beats per forward pass.
        device: where to run.
        dtype: autocast dtype (:func:`autocast_dtype`), or None.
        context: the beats' context (n, c) float32 for a context net, or None.

    Returns:
        float64 probabilities (n, n_classes) and the loss (NaN without ``y``/``criterion``).
    """
    was_training = model.training
    model.eval()
    probas, loss_sum = [], 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                xb = torch.tensor(x[start : start + batch_size], device=device)
                kwargs = {}
                if context is not None:
                    kwargs["context"] = torch.tensor(
                        context[start : start + batch_size], device=device
                    )
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = model(xb, **kwargs).float()
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
