"""Transformer encoder over the beat, with a padding mask and inspectable attention.

Each beat is cut into patches of ``patch`` samples (1: every sample is a token), embedded
linearly, given a sinusoidal positional encoding and passed through pre-norm encoder layers.
The trailing zero padding becomes a key padding mask, so no token attends to padding, and the
classifier mean-pools over the real tokens only. Changing padded values therefore cannot change
the output. Layers are written out (not ``nn.TransformerEncoderLayer``) so that forward can
return every layer's per-head attention weights for the attention maps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ecgops.models.nets.context import as_channels
from ecgops.models.nets.masking import padding_mask
from ecgops.schema import BEAT_LEN


def sinusoidal_encoding(length: int, d_model: int) -> torch.Tensor:
    """The fixed sinusoidal positional encoding of Vaswani et al., shape (length, d_model)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return pe


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer: x + MHA(LN(x)), then x + FF(LN(x)); can return attention.

    Args:
        d_model: token width.
        heads: attention heads.
        ff: feed-forward hidden width.
        dropout: dropout on attention weights and residual branches.
    """

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode tokens.

        Args:
            x: tokens, (n, T, d_model).
            key_padding_mask: (n, T) bool, True at padded tokens (never attended to).
            need_weights: also return per-head attention weights.

        Returns:
            (tokens, weights): weights are (n, heads, T, T) rows=queries, or None.
        """
        h = self.norm1(x)
        weights = None
        if need_weights:
            out, weights = self.attn(
                h,
                h,
                h,
                key_padding_mask=key_padding_mask,
                need_weights=True,
                average_attn_weights=False,
            )
        else:
            out = self.attend(h, key_padding_mask)
        x = x + self.drop(out)
        x = x + self.drop(self.ff(self.norm2(x)))
        return x, weights

    def attend(self, h: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        """Self-attention of ``self.attn``'s weights by ``scaled_dot_product_attention``.

        The same computation as ``self.attn(h, h, h, key_padding_mask=...)`` without the
        weights, but fused: ``nn.MultiheadAttention``'s inference fast path spends a third of
        the net's CPU time in its masked softmax; this predicts ~1.25x faster on CPU
        (``benchmarks/bench_predict.py``) and trains on the same kernel.

        Args:
            h: normalised tokens, (n, T, d_model).
            key_padding_mask: (n, T) bool, True at padded tokens.

        Returns:
            The attention output after the output projection, (n, T, d_model).
        """
        n, t, d = h.shape
        heads = self.attn.num_heads
        qkv = nn.functional.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.view(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=~key_padding_mask[:, None, None, :],
            dropout_p=self.attn.dropout if self.training else 0.0,
        )
        return self.attn.out_proj(out.transpose(1, 2).reshape(n, t, d))


class TransformerNet(nn.Module):
    """Patch embedding + sinusoidal positions + encoder layers + masked mean pooling.

    Args:
        n_classes: number of output classes.
        d_model: token width.
        heads: attention heads per layer.
        layers: encoder layers.
        ff: feed-forward hidden width.
        patch: samples per token (the beat is zero-extended to a multiple of it).
        dropout: dropout inside the layers and before the classifier.
        length: input length (187 samples).
        in_channels: leads per beat; a token is then the patch of every lead, and a sample
            is padding only where it is padding in every lead.
    """

    def __init__(
        self,
        n_classes: int,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        patch: int = 1,
        dropout: float = 0.1,
        length: int = BEAT_LEN,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.patch = patch
        self.length = length
        self.n_tokens = math.ceil(length / patch)
        self.in_channels = int(in_channels)
        self.embed = nn.Linear(patch * self.in_channels, d_model)
        self.register_buffer(
            "positions", sinusoidal_encoding(self.n_tokens, d_model), persistent=False
        )
        self.layers = nn.ModuleList(
            [EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers)]
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))

    def token_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Sample-level padding mask (n, L) -> token-level (n, T): a token is padding when all
        of its samples are."""
        extra = self.n_tokens * self.patch - mask.shape[1]
        if extra:
            mask = nn.functional.pad(mask, (0, extra), value=True)
        return mask.view(mask.shape[0], self.n_tokens, self.patch).all(dim=2)

    def patches(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens' raw values (n, T, patch * in_channels) and the sample padding mask (n, L).

        Args:
            x: beats (n, L), or (n, in_channels, L) / (n, in_channels * L) for several leads.
            mask: True at padding, the shape of ``x``; default from each lead's trailing zeros.

        Returns:
            The patches (padded samples zeroed) and the mask over samples (padding in every
            lead).
        """
        n = x.shape[0]
        if self.in_channels == 1:
            if mask is None:
                mask = padding_mask(x)
            x = x.masked_fill(mask, 0.0)
            extra = self.n_tokens * self.patch - x.shape[1]
            if extra:
                x = nn.functional.pad(x, (0, extra))
            return x.view(n, self.n_tokens, self.patch), mask
        leads = as_channels(x, self.in_channels)
        c, length = leads.shape[1], leads.shape[2]
        if mask is None:
            mask = padding_mask(leads.reshape(n * c, length))
        mask = mask.reshape(n, c, length)
        leads = leads.masked_fill(mask, 0.0)
        extra = self.n_tokens * self.patch - length
        if extra:
            leads = nn.functional.pad(leads, (0, extra))
        tokens = leads.view(n, c, self.n_tokens, self.patch).permute(0, 2, 1, 3)
        return tokens.reshape(n, self.n_tokens, c * self.patch), mask.all(dim=1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits for beats ``x`` (n, 187).

        Args:
            x: beats, (n, L) float.
            mask: (n, L) bool, True at padding; default computed from the trailing zeros of
                ``x``. Padded samples are zeroed and padded tokens are never attended to.
            return_attention: also return the attention weights of every layer.

        Returns:
            Logits (n, n_classes), or (logits, [per layer (n, heads, T, T)]).
        """
        patches, mask = self.patches(x, mask)
        tokens = self.embed(patches) + self.positions
        key_mask = self.token_mask(mask)
        weights: list[torch.Tensor] = []
        for layer in self.layers:
            tokens, w = layer(tokens, key_mask, need_weights=return_attention)
            if w is not None:
                weights.append(w)
        tokens = self.norm(tokens)
        keep = (~key_mask).unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        logits = self.head(pooled)
        return (logits, weights) if return_attention else logits
