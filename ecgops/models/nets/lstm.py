"""Recurrent beat classifiers: LSTM and bidirectional LSTM over the 187 samples.

A beat is its real samples followed by trailing zero padding. The nets respect each beat's true
length without ``pack_padded_sequence`` (whose backward pass is ~30x slower on CPU):

* the forward direction reads the whole padded row and is read out at the last real sample, so
  the padding after it never reaches the classifier;
* the backward direction reads each beat reversed *within its true length* (a per-row gather),
  so it starts on the last real sample instead of tens of padding zeros, and is read out after
  the first sample. Its outputs are gathered back into time order before the next layer.

This is exactly a packed (Bi)LSTM, computed with the fused full-length kernels.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgops.models.nets.masking import true_lengths


def reverse_within_length(seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``length`` steps and leave its padding steps in place.

    Args:
        seq: (n, L, d) sequences.
        lengths: (n,) true lengths.

    Returns:
        (n, L, d); applying it twice gives ``seq`` back.
    """
    steps = torch.arange(seq.shape[1], device=seq.device)[None, :]
    last = (lengths - 1).to(seq.device)[:, None]
    index = torch.where(steps <= last, last - steps, steps)
    return seq.gather(1, index.unsqueeze(-1).expand(-1, -1, seq.shape[2]))


class LSTMNet(nn.Module):
    """(Bi)LSTM over the beat, classified from the final states at each beat's true end.

    Args:
        n_classes: number of output classes.
        hidden: hidden units per direction.
        layers: stacked LSTM layers.
        bidirectional: read the beat in both directions.
        dropout: dropout between stacked layers and before the classifier.
    """

    def __init__(
        self,
        n_classes: int,
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for i in range(layers):
            size_in = 1 if i == 0 else hidden * directions
            self.forward_layers.append(nn.LSTM(size_in, hidden, batch_first=True))
            if bidirectional:
                self.backward_layers.append(nn.LSTM(size_in, hidden, batch_first=True))
        self.between = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden * directions, n_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for beats ``x`` of shape (n, 187).

        Args:
            x: beats, (n, L) float.
            mask: optional (n, L) bool, True at padding (padded samples are then zeroed);
                default: computed from the trailing zeros of ``x``.

        Returns:
            Logits, (n, n_classes).
        """
        if mask is not None:
            x = x.masked_fill(mask, 0.0)
        lengths = true_lengths(x, mask)
        seq = x.unsqueeze(-1)
        n_layers = len(self.forward_layers)
        for i in range(n_layers):
            out_f, _ = self.forward_layers[i](seq)
            if self.bidirectional:
                out_b, _ = self.backward_layers[i](reverse_within_length(seq, lengths))
                out_b = reverse_within_length(out_b, lengths)
                out = torch.cat([out_f, out_b], dim=-1)
            else:
                out = out_f
            seq = self.between(out) if i < n_layers - 1 else out
        rows = torch.arange(x.shape[0], device=x.device)
        last = out_f[rows, lengths - 1]
        if self.bidirectional:
            # the backward direction's final state sits at position 0 in time order
            last = torch.cat([last, out_b[:, 0]], dim=-1)
        return self.head(last)
