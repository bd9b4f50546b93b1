"""MeDSLIP with the extra objectives' heads beside it: one trunk pass per image feeds all of them.

The heads are training-only. They sit in `objectives` (and the optional joint segmentation head in
`head`, as in `MeDSLIPWithSegmentation`), never inside `medslip`, so the MeDSLIP checkpoint written at
the end of a run (`medslip_final.pt`, what export and evaluation read) holds none of their weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from training.model.medslip import MeDSLIP, MeDSLIPOutput
from training.model.segmentation import SegmentationHead


class MeDSLIPWithObjectives(nn.Module):
    """MeDSLIP + objective modules (+ a segmentation head), all reading one run of the trunk."""

    def __init__(
        self,
        medslip: MeDSLIP,
        objectives: Mapping[str, nn.Module],
        head: SegmentationHead | None = None,
    ) -> None:
        super().__init__()
        self.medslip = medslip
        self.head = head
        self.objectives = nn.ModuleDict(dict(objectives))

    def forward(
        self, images: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> tuple[MeDSLIPOutput, torch.Tensor | None, dict[str, torch.Tensor]]:
        """images (B, 3, S, S), batch: the sample entries the objectives read ->
        (MeDSLIP output with the built-in books, segmentation logits (B, K, S, S) or None,
        the objectives' unweighted terms by name)."""
        logits = None
        if self.head is None:
            grid = self.medslip.res_features(images)  # (B, C, G, G)
        else:
            stages = self.medslip.res_features.forward_stages(images)  # stem..layer3
            grid = stages[-1]
            logits = self.head(stages, (images.shape[-2], images.shape[-1]))  # (B, K, S, S)
        output = self.medslip(images, grid=grid)
        terms: dict[str, torch.Tensor] = {}
        for objective in self.objectives.values():
            terms.update(objective(grid, batch))
        return output, logits, terms
