"""Projection heads and the tag decoder of the extra objectives (beside MeDSLIP, never exported).

The projection heads are ASG's (ASGMVLP_CODE models/encoder.py): Linear -> BN -> ReLU -> Linear -> BN
without affine parameters, the local variant as 1 x 1 convolutions so every patch is projected alike.
The tag decoder is ASG's IRLModel: a pre-norm transformer decoder whose queries are tag text
embeddings, reading the image's patch tokens, one logit per tag from a shared linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from training.model.decoder import QueryDecoder, QueryDecoderLayer


class ProjectionHead(nn.Sequential):
    """(N, in) -> (N, out): Linear, BatchNorm, ReLU, Linear, BatchNorm (affine=False)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
            nn.BatchNorm1d(out_dim, affine=False),
        )


class LocalProjectionHead(nn.Sequential):
    """(B, in, H, W) -> (B, out, H, W): the projection head as 1 x 1 convolutions (BN over all patches)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Conv2d(in_dim, hidden_dim, kernel_size=1),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, out_dim, kernel_size=1),
            nn.BatchNorm2d(out_dim, affine=False),
        )


class TagDecoder(nn.Module):
    """Image-tag recognition head: tag queries (L, T) x patch tokens (B, C, G, G) -> logits (B, L).

    The release's queries and patch features share its decoder width (768); here a linear layer brings
    the trunk's tokens (C) and the text embeddings (T) to `d_model` first.
    """

    def __init__(
        self,
        token_dim: int,
        text_dim: int,
        *,
        d_model: int = 768,
        n_heads: int = 4,
        ffn_dim: int = 1024,
        n_layers: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.memory_projection = nn.Linear(token_dim, d_model)
        self.query_projection = nn.Linear(text_dim, d_model)
        self.decoder = QueryDecoder(QueryDecoderLayer(d_model, n_heads, ffn_dim, dropout), n_layers, d_model)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, 1)
        for module in self.modules():  # the release's _init_weights: N(0, 0.02)
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
                nn.init.normal_(module.in_proj_weight, mean=0.0, std=0.02)
                nn.init.normal_(module.out_proj.weight, mean=0.0, std=0.02)

    def forward(self, grid: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """grid (B, C, G, G), queries (L, T) -> logits (B, L)."""
        batch = grid.shape[0]
        memory = self.memory_projection(grid.flatten(2).transpose(1, 2)).transpose(0, 1)  # (N, B, D)
        tags = self.query_projection(queries).unsqueeze(1).expand(-1, batch, -1)  # (L, B, D)
        features, _ = self.decoder(tags, memory)  # (L, B, D)
        return self.classifier(self.dropout(features)).squeeze(-1).t()  # (B, L)
