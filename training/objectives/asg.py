"""ASG's four terms on the MeDSLIP trunk (ASGMVLP/ASGMVLP_CODE, main.py `ASG.forward`).

Image side: the trunk's patch-token grid (B, C, G, G). Its mean is the global image feature (ASG pools a
ResNet's layer4; this trunk ends at layer3, whose grid MeDSLIP reads); the grid itself is the local
feature (ASG: layer3 / ViT patches). Text side: the frozen sentence encoder's cached embeddings of the
report, of its sentences and of the tag descriptions (`ReportBank`); only the projection heads learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.objectives.config import AsgSettings
from training.objectives.heads import LocalProjectionHead, ProjectionHead, TagDecoder
from training.objectives.losses import (
    image_report_alignment,
    region_sentence_alignment,
    soft_label_contrast,
    soft_targets,
    tag_recognition,
)
from training.objectives.roi import pixel_boxes_to_cells, roi_align_1x1


def project_sentences(head: nn.Module, sentences: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """sentences (B, M, T), valid (B, M) -> unit embeddings (B, M, E), zero where padded.

    Only real sentences go through the head, so padding never enters its BatchNorm statistics."""
    projected = F.normalize(head(sentences[valid]), dim=-1)  # (K, E)
    out = projected.new_zeros(*valid.shape, projected.shape[-1])  # (B, M, E)
    out[valid] = projected
    return out


class AsgObjective(nn.Module):
    """Heads of the enabled ASG terms; `forward` returns those terms, unweighted, by name."""

    tag_queries: torch.Tensor

    def __init__(
        self,
        settings: AsgSettings,
        terms: Sequence[str],
        token_dim: int,
        tag_queries: torch.Tensor,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.terms = tuple(terms)
        text_dim = tag_queries.shape[1]
        embed, hidden = settings.embed_dim, settings.hidden_dim
        self.image_global: nn.Module | None = None
        self.report_global: nn.Module | None = None
        if "asg_ira" in self.terms or "asg_soft" in self.terms:
            self.image_global = ProjectionHead(token_dim, hidden, embed)
            self.report_global = ProjectionHead(text_dim, hidden, embed)
        self.image_local: nn.Module | None = None
        self.sentence_local: nn.Module | None = None
        if "asg_arsa" in self.terms:
            self.image_local = LocalProjectionHead(token_dim, hidden, embed)
            self.sentence_local = ProjectionHead(text_dim, hidden, embed)
        self.tag_decoder: TagDecoder | None = None
        if "asg_tags" in self.terms:
            self.tag_decoder = TagDecoder(
                token_dim,
                text_dim,
                d_model=settings.tag_d_model,
                n_heads=settings.tag_heads,
                ffn_dim=settings.tag_ffn_dim,
                n_layers=settings.tag_layers,
                dropout=settings.tag_dropout,
            )
        self.register_buffer("tag_queries", tag_queries.clone())  # (L, T)

    def forward(self, grid: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """grid (B, C, G, G) patch tokens; batch: the sample entries of `ReportBank.item` + region boxes."""
        terms: dict[str, torch.Tensor] = {}
        tau = self.settings.temperature
        if self.image_global is not None and self.report_global is not None:
            image = F.normalize(self.image_global(grid.mean(dim=(2, 3))), dim=-1)  # (B, E)
            report = F.normalize(self.report_global(batch["report_embedding"]), dim=-1)  # (B, E)
            scores = image @ report.t() / tau  # (B, B) S = v t^T / tau
            if "asg_ira" in self.terms:
                terms["asg_ira"] = image_report_alignment(scores)
            if "asg_soft" in self.terms:
                target = soft_targets(batch["tags"], self.settings.soft_identity_share)  # (B, B)
                terms["asg_soft"] = soft_label_contrast(scores, target)
        if self.image_local is not None and self.sentence_local is not None:
            terms["asg_arsa"] = self._region_sentence(grid, batch, self.image_local, self.sentence_local)
        if self.tag_decoder is not None:
            terms["asg_tags"] = tag_recognition(self.tag_decoder(grid, self.tag_queries), batch["tags"])
        return terms

    def _region_sentence(
        self,
        grid: torch.Tensor,
        batch: Mapping[str, torch.Tensor],
        image_local: nn.Module,
        sentence_local: nn.Module,
    ) -> torch.Tensor:
        local = F.normalize(image_local(grid), dim=1)  # (B, E, G, G) unit patch embeddings
        boxes = pixel_boxes_to_cells(batch["region_boxes"], batch["image"].shape[-1], grid.shape[-1])
        regions = roi_align_1x1(local, boxes)  # (B, R, E)
        valid_sentences = batch["sentence_valid"]  # (B, M)
        sentences = project_sentences(sentence_local, batch["sentences"], valid_sentences)  # (B, M, E)
        links = batch["region_links"]  # (B, R, M)
        counts = links.sum(dim=-1, keepdim=True).clamp(min=1).to(sentences.dtype)  # (B, R, 1)
        texts = links.to(sentences.dtype) @ sentences / counts  # (B, R, E) mean of the region's sentences
        valid = batch["region_valid"] & links.any(dim=-1)  # (B, R)
        same_text = None
        if self.settings.arsa_mask_duplicates:
            same_text = (links.unsqueeze(2) == links.unsqueeze(1)).all(dim=-1)  # (B, R, R)
        return region_sentence_alignment(regions, texts, valid, self.settings.temperature, same_text)
