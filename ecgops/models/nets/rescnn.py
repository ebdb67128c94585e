"""Residual 1-D CNN (Kachuee et al. 2018 style): a conv stem, residual blocks, a dense head."""

from __future__ import annotations

import torch
from torch import nn

from ecgops.models.nets.context import as_channels, with_context
from ecgops.schema import BEAT_LEN


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, ReLU, then max-pool (size 5, stride 2).

    Args:
        channels: channels in and out.
        kernel: convolution kernel size (odd keeps the length).
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
        )
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(kernel_size=5, stride=2, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual transform and downsampling by two."""
        return self.pool(self.act(x + self.body(x)))


class ResCNNNet(nn.Module):
    """Conv stem, ``blocks`` residual blocks, flatten, two dense layers (study's layout).

    Args:
        n_classes: number of output classes.
        channels: channels of every conv layer.
        blocks: number of residual blocks (each halves the length).
        kernel: convolution kernel size.
        dropout: dropout before the dense layers.
        hidden: width of the hidden dense layer.
        length: input length (187 samples).
        context_dim: width of the per-beat context (its RR features) concatenated to the
            flattened encoder output before the dense layers; 0: none.
        in_channels: leads per beat; with more than one, ``x`` is (n, in_channels, 187) or
            the leads side by side, (n, in_channels * 187).
    """

    def __init__(
        self,
        n_classes: int,
        channels: int = 32,
        blocks: int = 5,
        kernel: int = 5,
        dropout: float = 0.2,
        hidden: int = 32,
        length: int = BEAT_LEN,
        context_dim: int = 0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.context_dim = int(context_dim)
        self.in_channels = int(in_channels)
        self.stem = nn.Sequential(
            nn.Conv1d(self.in_channels, channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(channels, kernel) for _ in range(blocks)])
        with torch.no_grad():
            flat = self.blocks(self.stem(torch.zeros(1, self.in_channels, length))).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat + self.context_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_classes),
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for beats ``x`` (n, 187) and, with ``context_dim``, their ``context`` (n, c).

        ``mask`` (True at padding, the shape of ``x``) zeroes padded samples. A multi-lead net
        takes (n, in_channels, 187) or (n, in_channels * 187).
        """
        if mask is not None:
            x = x.masked_fill(mask, 0.0)
        encoded = self.blocks(self.stem(as_channels(x, self.in_channels)))
        return self.head(with_context(encoded, context, self.context_dim))
