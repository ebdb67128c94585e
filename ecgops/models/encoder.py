"""The transfer track's encoder: a residual 1-D CNN trunk mapping a beat to a small embedding.

``build_encoder(cfg)`` makes the encoder named by ``transfer.encoder.arch`` in params.yaml with
``transfer.embedding_dim`` outputs; :class:`ProjectionHead` is the contrastive head (16 -> 32);
:class:`Classifier` puts a linear head on an encoder and can freeze it (strategy A / phase one
of C) so that neither its weights nor its batch-norm statistics move.
Encoders are saved with their architecture so a fine-tune rebuilds them from the file alone.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgops.config import Config
from ecgops.io import atomic_path

ENCODER_FORMAT = 1


class ResidualBlock(nn.Module):
    """Two same-padded convolutions with batch norm and an identity skip, then 2x max pooling."""

    def __init__(self, channels: int, kernel: int, dropout: float) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
        )
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, L) -> (n, c, L // 2)."""
        return self.pool(self.act(x + self.body(x)))


class Encoder(nn.Module):
    """Residual 1-D CNN: beat (n, 187) -> embedding (n, embedding_dim).

    A stem convolution lifts the single lead to ``channels``, ``blocks`` residual blocks halve
    the length each, global average pooling removes time and a linear layer gives the embedding.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        channels: int = 32,
        blocks: int = 4,
        kernel: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.hparams = {
            "embedding_dim": int(embedding_dim),
            "channels": int(channels),
            "blocks": int(blocks),
            "kernel": int(kernel),
            "dropout": float(dropout),
        }
        self.embedding_dim = int(embedding_dim)
        self.stem = nn.Sequential(
            nn.Conv1d(1, channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(
            *[ResidualBlock(channels, kernel, dropout) for _ in range(blocks)]
        )
        self.out = nn.Linear(channels, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed beats given as (n, 187) or (n, 1, 187)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        h = self.blocks(self.stem(x))
        return self.out(h.mean(dim=-1))


class ProjectionHead(nn.Module):
    """Contrastive projection MLP: embedding -> hidden -> projection (SimCLR's g)."""

    def __init__(self, embedding_dim: int = 16, projection_dim: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embedding_dim, projection_dim),
            nn.ReLU(inplace=True),
            nn.Linear(projection_dim, projection_dim),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(n, embedding_dim) -> (n, projection_dim)."""
        return self.net(h)


class Classifier(nn.Module):
    """An encoder with a linear head on its embedding; returns logits (n, n_classes).

    ``freeze_encoder(True)`` stops gradients into the encoder and keeps it in eval mode during
    training (batch-norm statistics and dropout frozen too), so a frozen encoder is bit-identical
    after training.
    """

    def __init__(self, encoder: Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embedding_dim, n_classes)
        self.encoder_frozen = False

    def freeze_encoder(self, frozen: bool = True) -> Classifier:
        """Freeze (or unfreeze) the encoder's parameters and normalisation statistics."""
        self.encoder_frozen = bool(frozen)
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)
        return self

    def train(self, mode: bool = True) -> Classifier:
        """Set training mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for beats (n, 187)."""
        return self.head(self.encoder(x))


ENCODERS: dict[str, type[Encoder]] = {"rescnn": Encoder}


def encoder_kwargs(cfg: Config) -> dict[str, Any]:
    """Constructor arguments of the configured encoder (without its ``arch`` name)."""
    spec = dict(cfg.transfer.encoder)
    spec.pop("arch", None)
    spec["embedding_dim"] = cfg.transfer.embedding_dim
    return spec


def build_encoder(cfg: Config, arch: str | None = None) -> Encoder:
    """The encoder named in ``transfer.encoder.arch`` (or ``arch``), randomly initialised.

    Args:
        cfg: configuration (``transfer.encoder`` and ``transfer.embedding_dim``).
        arch: override of the architecture name.

    Returns:
        A fresh :class:`Encoder`.
    """
    name = arch or cfg.transfer.encoder.get("arch", "rescnn")
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder arch {name!r}; expected one of {sorted(ENCODERS)}")
    return ENCODERS[name](**encoder_kwargs(cfg))


def build_classifier(n_classes: int, arch: str = "rescnn", **hparams: Any) -> Classifier:
    """A :class:`Classifier` on a fresh encoder (the registry predictor's builder).

    ``TorchBeatPredictor("ecgops.models.encoder:build_classifier", {"arch": ..., **hparams},
    n_classes, state_dict)`` rebuilds a fine-tuned model from its weights with this.
    """
    if arch not in ENCODERS:
        raise ValueError(f"unknown encoder arch {arch!r}; expected one of {sorted(ENCODERS)}")
    return Classifier(ENCODERS[arch](**hparams), n_classes)


def encoder_arch(encoder: Encoder) -> str:
    """The registered name of an encoder's architecture."""
    return next(k for k, v in ENCODERS.items() if type(encoder) is v)


def build_projection(cfg: Config) -> ProjectionHead:
    """The contrastive projection head sized from ``transfer``."""
    return ProjectionHead(cfg.transfer.embedding_dim, cfg.transfer.projection_dim)


def save_encoder(encoder: Encoder, path: Path, meta: dict[str, Any] | None = None) -> str:
    """Write an encoder (weights + architecture + meta) atomically.

    Args:
        encoder: the trained encoder.
        path: target ``.pt`` file.
        meta: extra facts stored beside the weights (method, scheme, run id ...).

    Returns:
        The sha256 of the written file.
    """
    payload = {
        "format": ENCODER_FORMAT,
        "arch": encoder_arch(encoder),
        "hparams": dict(encoder.hparams),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return file_sha256(path)


def load_encoder(path: Path) -> tuple[Encoder, dict[str, Any]]:
    """Rebuild an encoder saved by :func:`save_encoder`.

    Args:
        path: the ``.pt`` file.

    Returns:
        The encoder (on CPU, eval mode) and its meta dict.
    """
    from ecgops.errors import DataError

    path = Path(path)
    if not path.exists():
        raise DataError(path, "encoder file not found; run the pretraining first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        encoder = ENCODERS[payload["arch"]](**payload["hparams"])
        encoder.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise DataError(path, f"not a usable ecgops encoder file ({exc})") from exc
    return encoder.eval(), dict(payload.get("meta", {}))


def file_sha256(path: Path) -> str:
    """sha256 of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
