"""DETR-style pre-norm query decoder that also returns its cross-attention maps.

Sequence-first tensors (`(L, B, D)`) as in the release; besides matching its layout this keeps
`nn.MultiheadAttention` off its fused inference fast path, which ONNX export cannot always lower.
No positional encodings: the released checkpoint has none, and its keys must load one-to-one.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class QueryDecoderLayer(nn.Module):
    """Self-attention over queries, cross-attention into patch tokens, feed-forward; LayerNorm first."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor,
                per_head: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (Q, B, D), memory (N, B, D) -> updated queries (Q, B, D), attention (B, Q, N) averaged
        over heads, or (B, H, Q, N) with `per_head` (for attribution tools that weigh each head's values)."""
        normed = self.norm1(queries)
        attended, _ = self.self_attn(normed, normed, normed, need_weights=False)  # (Q, B, D)
        queries = queries + self.dropout1(attended)
        normed = self.norm2(queries)
        attended, attention = self.multihead_attn(
            normed, memory, memory, need_weights=True, average_attn_weights=not per_head
        )  # (Q, B, D), (B, Q, N) averaged over heads or (B, H, Q, N)
        queries = queries + self.dropout2(attended)
        normed = self.norm3(queries)
        queries = queries + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(normed)))))
        return queries, attention


class QueryDecoder(nn.Module):
    """A stack of identical (independently parameterised) layers followed by a final LayerNorm."""

    def __init__(self, layer: QueryDecoderLayer, n_layers: int, d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor,
                per_head: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """queries (Q, B, D), memory (N, B, D) -> output (Q, B, D), per-layer attention [(B, Q, N)], or
        [(B, H, Q, N)] with `per_head`."""
        attentions: list[torch.Tensor] = []
        output = queries
        for layer in self.layers:
            output, attention = layer(output, memory, per_head)
            attentions.append(attention)
        return self.norm(output), attentions
