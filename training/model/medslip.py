"""MeDSLIP: a ResNet trunk whose patch tokens are split into a pathology and an anatomy stream, each
queried by text embeddings through its own transformer decoder.

Parameter names map one-to-one to the released checkpoint (Shef-AIRE/MeDSLIP, model_MeDSLIP.py); the two
query books are extra *buffers* here so that a saved model carries the exact embeddings it was trained
with (the release recomputed them from BERT at every start and never saved them).

One deliberate difference: the release passes a single LayerNorm object as the final `norm` of both
decoders, so the two streams share it (its state_dict still lists both keys, with equal values). Here each
decoder owns its norm; loading the release gives both the same values, and training lets them differ
(512 more parameters than the release's 21,237,572).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.model.config import ModelConfig
from training.model.decoder import QueryDecoder, QueryDecoderLayer
from training.model.resnet import ResNetTrunk


class MeDSLIPOutput(NamedTuple):
    """Everything one forward pass produces (a NamedTuple, so torch.export treats it as a pytree)."""

    pathology_logits: torch.Tensor  # (B, Qp, 2) existence logits, index 1 = present
    anatomy_logits: torch.Tensor  # (B, Qa, 2)
    pathology_features: torch.Tensor  # (B, Qp, D) decoder output (before dropout)
    anatomy_features: torch.Tensor  # (B, Qa, D)
    pathology_maps: torch.Tensor  # (B, Qp, G, G) last-layer head-averaged cross-attention
    anatomy_maps: torch.Tensor  # (B, Qa, G, G)
    pathology_layer_maps: list[torch.Tensor]  # per decoder layer, each (B, Qp, G, G)
    anatomy_layer_maps: list[torch.Tensor]  # per decoder layer, each (B, Qa, G, G)
    pathology_text_proj: torch.Tensor  # (B, Qp, T) projection back into text space, for ProtoCL
    anatomy_text_proj: torch.Tensor  # (B, Qa, T)


class MeDSLIP(nn.Module):
    """Dual-stream language-image model; queries are arbitrary text embeddings (open vocabulary)."""

    pathology_book: torch.Tensor
    anatomy_book: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        token_dim = config.token_dim  # C
        self.res_features = ResNetTrunk(config.trunk)

        # Stream split: a per-token linear "mask" (no sigmoid, as released) routes features to each stream.
        self.mask_generator = nn.Linear(token_dim, token_dim)
        self.res_l1_pathology = nn.Linear(token_dim, token_dim)
        self.res_l2_pathology = nn.Linear(token_dim, config.d_model)
        self.res_l1_anatomy = nn.Linear(token_dim, token_dim)
        self.res_l2_anatomy = nn.Linear(token_dim, config.d_model)

        # One projection serves both books: the release has no separate anatomy projection.
        self.pathology_embedding_layer = nn.Linear(config.text_dim, config.d_model)

        layer = QueryDecoderLayer(config.d_model, config.n_heads, config.ffn_dim, config.dropout)
        self.decoder_pathology = QueryDecoder(layer, config.n_layers, config.d_model)
        self.decoder_anatomy = QueryDecoder(layer, config.n_layers, config.d_model)
        self.dropout_feas_pathology = nn.Dropout(config.dropout)
        self.dropout_feas_anatomy = nn.Dropout(config.dropout)

        self.classifier_pathology = nn.Linear(config.d_model, config.num_existence_classes)
        self.classifier_anatomy = nn.Linear(config.d_model, config.num_existence_classes)
        self.cl_fc_pathology = nn.Linear(config.d_model, config.text_dim)
        self.cl_fc_anatomy = nn.Linear(config.d_model, config.text_dim)

        self.register_buffer("pathology_book", torch.zeros(config.num_pathology, config.text_dim))
        self.register_buffer("anatomy_book", torch.zeros(config.num_anatomy, config.text_dim))
        self._init_heads()

    def _init_heads(self) -> None:
        """BERT-style N(0, 0.02) for linear and attention weights, as the release (trunk keeps He init)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
                nn.init.normal_(module.in_proj_weight, mean=0.0, std=0.02)
                nn.init.normal_(module.out_proj.weight, mean=0.0, std=0.02)

    @torch.no_grad()
    def set_query_books(self, pathology_book: torch.Tensor, anatomy_book: torch.Tensor) -> None:
        """Install the built-in query embeddings (from `build_query_books` or a checkpoint)."""
        for name, book, buffer in (
            ("pathology_book", pathology_book, self.pathology_book),
            ("anatomy_book", anatomy_book, self.anatomy_book),
        ):
            if tuple(book.shape) != tuple(buffer.shape):
                raise ValueError(f"{name} must have shape {tuple(buffer.shape)}, got {tuple(book.shape)}")
            buffer.copy_(book.to(dtype=buffer.dtype, device=buffer.device))

    def encode_image(
        self, images: torch.Tensor, grid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """images (B, 3, S, S) -> pathology tokens (B, N, D), anatomy tokens (B, N, D), grid height, width.

        `grid` (B, C, Gh, Gw): the trunk's output when the caller already ran the trunk (a segmentation
        head on the same trunk), so it is not run twice."""
        grid = self.res_features(images) if grid is None else grid  # (B, C, Gh, Gw)
        grid_h, grid_w = grid.shape[-2], grid.shape[-1]
        tokens = grid.flatten(2).transpose(1, 2)  # (B, N, C), N = Gh * Gw
        mask = self.mask_generator(tokens)  # (B, N, C)
        pathology = self.res_l2_pathology(F.relu(self.res_l1_pathology(mask * tokens)))  # (B, N, D)
        anatomy = self.res_l2_anatomy(F.relu(self.res_l1_anatomy((1 - mask) * tokens)))  # (B, N, D)
        return pathology, anatomy, grid_h, grid_w

    def _decode(
        self, decoder: QueryDecoder, query_embeddings: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """query_embeddings (Q, T), tokens (B, N, D) -> features (B, Q, D), attention [(B, Q, N)]."""
        batch = tokens.shape[0]
        queries = self.pathology_embedding_layer(query_embeddings)  # (Q, D)
        queries = queries.unsqueeze(1).expand(-1, batch, -1)  # (Q, B, D)
        features, attentions = decoder(queries, tokens.transpose(0, 1))  # (Q, B, D), [(B, Q, N)]
        return features.transpose(0, 1), attentions

    def forward(
        self,
        images: torch.Tensor,
        pathology_queries: torch.Tensor | None = None,
        anatomy_queries: torch.Tensor | None = None,
        grid: torch.Tensor | None = None,
    ) -> MeDSLIPOutput:
        """images (B, 3, S, S) normalised; queries (Q, T) text embeddings, None for the built-in books;
        `grid` the trunk output when already computed (see `encode_image`)."""
        pathology_queries = self.pathology_book if pathology_queries is None else pathology_queries
        anatomy_queries = self.anatomy_book if anatomy_queries is None else anatomy_queries
        pathology_tokens, anatomy_tokens, grid_h, grid_w = self.encode_image(images, grid)

        pathology_features, pathology_attn = self._decode(
            self.decoder_pathology, pathology_queries, pathology_tokens
        )  # (B, Qp, D), [(B, Qp, N)]
        anatomy_features, anatomy_attn = self._decode(
            self.decoder_anatomy, anatomy_queries, anatomy_tokens
        )  # (B, Qa, D), [(B, Qa, N)]

        pathology_out = self.dropout_feas_pathology(pathology_features)
        anatomy_out = self.dropout_feas_anatomy(anatomy_features)
        pathology_maps = [a.unflatten(-1, (grid_h, grid_w)) for a in pathology_attn]  # [(B, Qp, Gh, Gw)]
        anatomy_maps = [a.unflatten(-1, (grid_h, grid_w)) for a in anatomy_attn]  # [(B, Qa, Gh, Gw)]
        return MeDSLIPOutput(
            pathology_logits=self.classifier_pathology(pathology_out),  # (B, Qp, 2)
            anatomy_logits=self.classifier_anatomy(anatomy_out),  # (B, Qa, 2)
            pathology_features=pathology_features,
            anatomy_features=anatomy_features,
            pathology_maps=pathology_maps[-1],
            anatomy_maps=anatomy_maps[-1],
            pathology_layer_maps=pathology_maps,
            anatomy_layer_maps=anatomy_maps,
            pathology_text_proj=self.cl_fc_pathology(pathology_out),  # (B, Qp, T)
            anatomy_text_proj=self.cl_fc_anatomy(anatomy_out),  # (B, Qa, T)
        )
