"""A plain 1-D convolutional beat classifier: conv blocks, then a dense head."""

from __future__ import annotations

import torch
from torch import nn

from ecgops.models.nets.context import as_channels, with_context
from ecgops.schema import BEAT_LEN


class CNNNet(nn.Module):
    """Conv1d -> BatchNorm -> ReLU -> MaxPool(2) per entry of ``channels``, then a dense head.

    The head flattens the feature maps (beats are aligned on the R peak, so position matters).

    Args:
        n_classes: number of output classes.
        channels: output channels of each conv block.
        kernel: convolution kernel size (odd keeps the length).
        dropout: dropout before the dense layers.
        hidden: width of the hidden dense layer.
        length: input length (187 samples).
        context_dim: width of the per-beat context (its RR features) concatenated to the
            flattened encoder output before the dense layers; 0: none.
        in_channels: leads per beat; with more than one, ``x`` is (n, in_channels, 187) or
            the leads side by side, (n, in_channels * 187) (:func:`as_channels`).
    """

    def __init__(
        self,
        n_classes: int,
        channels: list[int] | tuple[int, ...] = (32, 64, 128),
        kernel: int = 5,
        dropout: float = 0.2,
        hidden: int = 64,
        length: int = BEAT_LEN,
        context_dim: int = 0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.context_dim = int(context_dim)
        self.in_channels = int(in_channels)
        blocks: list[nn.Module] = []
        c_in = self.in_channels
        for c_out in channels:
            blocks += [
                nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, self.in_channels, length)).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat + self.context_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
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
        encoded = self.features(as_channels(x, self.in_channels))
        return self.head(with_context(encoded, context, self.context_dim))
