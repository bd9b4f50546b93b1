"""MLIP's two terms on the MeDSLIP trunk: a reconstruction from the paper (Liu et al., ISBI 2024,
arXiv 2401.01591), which has no public code. Every choice that the paper leaves open is listed in
docs/objectives.md ("MLIP: a reconstruction").

* `mlip_psm`, patch-sentence matching: patches and report sentences are matched many-to-many by entropic
  optimal transport; the plan-weighted cosine scores image i against report j, and a contrastive loss
  puts each image's own report above the others.
* `mlip_mcl`, masked contrastive learning with semantic-integrity estimation: the patches least relevant
  to the image's own report (best cosine with any of its sentences) are dropped, the rest pooled, and
  the masked view is contrasted with the report. The trunk is convolutional, so masking drops tokens
  after the trunk rather than image patches before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.objectives.asg import project_sentences
from training.objectives.config import MlipSettings
from training.objectives.heads import LocalProjectionHead, ProjectionHead
from training.objectives.losses import (
    keep_relevant,
    multi_positive_contrast,
    patch_relevance,
    transport_scores,
)


class MlipObjective(nn.Module):
    """Heads of the enabled MLIP terms; `forward` returns those terms, unweighted, by name."""

    def __init__(self, settings: MlipSettings, terms: Sequence[str], token_dim: int, text_dim: int) -> None:
        super().__init__()
        self.settings = settings
        self.terms = tuple(terms)
        embed, hidden = settings.embed_dim, settings.hidden_dim
        self.patch_head = LocalProjectionHead(token_dim, hidden, embed)
        self.sentence_head = ProjectionHead(text_dim, hidden, embed)
        self.image_head: nn.Module | None = None
        self.report_head: nn.Module | None = None
        if "mlip_mcl" in self.terms:
            self.image_head = ProjectionHead(token_dim, hidden, embed)
            self.report_head = ProjectionHead(text_dim, hidden, embed)

    def forward(self, grid: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """grid (B, C, G, G) patch tokens; batch: the sample entries of `ReportBank.item`."""
        settings = self.settings
        report_index = batch["report_index"]  # (B,)
        if settings.same_report_positive:
            positives = report_index.unsqueeze(1) == report_index.unsqueeze(0)  # (B, B)
        else:
            positives = torch.eye(report_index.shape[0], dtype=torch.bool, device=grid.device)
        patches = F.normalize(self.patch_head(grid), dim=1).flatten(2).transpose(1, 2)  # (B, N, E)
        valid = batch["sentence_valid"]  # (B, M)
        sentences = project_sentences(self.sentence_head, batch["sentences"], valid)  # (B, M, E)
        scores = transport_scores(
            patches, sentences, valid, settings.sinkhorn_epsilon, settings.sinkhorn_iterations
        )  # (B, B)
        terms = {"mlip_psm": multi_positive_contrast(scores / settings.temperature, positives)}
        if self.image_head is not None and self.report_head is not None:
            with torch.no_grad():
                relevance = patch_relevance(patches, sentences, valid)  # (B, N)
                keep = keep_relevant(relevance, settings.mask_ratio)  # (B, N)
            tokens = grid.flatten(2).transpose(1, 2)  # (B, N, C)
            weights = keep.unsqueeze(-1).to(tokens.dtype)  # (B, N, 1)
            masked = (tokens * weights).sum(dim=1) / weights.sum(dim=1)  # (B, C) mean of kept tokens
            image = F.normalize(self.image_head(masked), dim=-1)  # (B, E)
            report = F.normalize(self.report_head(batch["report_embedding"]), dim=-1)  # (B, E)
            terms["mlip_mcl"] = multi_positive_contrast(image @ report.t() / settings.temperature, positives)
        return terms
