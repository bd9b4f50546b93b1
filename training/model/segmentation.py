"""Anatomy segmentation on top of the (pre-trained) MeDSLIP trunk: a small U-Net style decoder.

The trunk's stage outputs (stem, layer1, layer2, layer3) are the encoder; the decoder upsamples layer3
back to the input size with skip connections, so lung/heart/clavicle outlines keep full resolution.

A `SegmentationModel` may carry a second, frozen head on the same trunk: the **prior head**, whose
lungs-and-heart probability is the body prior of the finding heat maps (`training.model.grounding`).
The masks a user gets and the prior the maps were measured with are then trained separately: a head
re-drawn until the thin clavicles have masks changes the prior enough to move the maps (see
docs/training.md), so the stage that sharpens the masks keeps the head the maps were chosen with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Output channel order = the bundle contract's structures, patient's side; sigmoid per structure
# (clavicles overlap the lungs).
from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from training.model.medslip import MeDSLIP, MeDSLIPOutput
from training.model.resnet import ResNetTrunk


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class UpBlock(nn.Module):
    """Upsample to the skip's resolution, concatenate the skip, refine with two 3x3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.refine = nn.Sequential(
            *_conv_bn_relu(in_channels + skip_channels, out_channels),
            *_conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, h, w), skip (B, Cs, H, W) -> (B, Cout, H, W)."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, skip], dim=1))


class SegmentationHead(nn.Module):
    """U-Net decoder over trunk stages (stem, layer1, layer2, layer3) -> K logits at input resolution."""

    def __init__(
        self,
        trunk_channels: Sequence[int],
        num_structures: int = len(SEGMENTATION_STRUCTURES),
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
    ) -> None:
        super().__init__()
        if len(trunk_channels) != 4 or len(decoder_channels) != 4:
            raise ValueError("expected 4 trunk stages (stem, layer1..3) and 4 decoder widths")
        stem, layer1, layer2, layer3 = trunk_channels
        self.decoder_channels: tuple[int, ...] = tuple(decoder_channels)  # what a checkpoint records
        width8, width4, width2, width1 = decoder_channels
        self.up_to_8 = UpBlock(layer3, layer2, width8)  # stride 16 -> 8
        self.up_to_4 = UpBlock(width8, layer1, width4)  # 8 -> 4
        self.up_to_2 = UpBlock(width4, stem, width2)  # 4 -> 2
        self.full_resolution = nn.Sequential(*_conv_bn_relu(width2, width1))
        self.classifier = nn.Conv2d(width1, num_structures, kernel_size=1)

    def forward(self, stages: Sequence[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        """stages [(B, Ci, S/2^k, S/2^k)] stem..layer3 -> logits (B, K, *output_size)."""
        stem, layer1, layer2, layer3 = stages
        x = self.up_to_8(layer3, layer2)  # (B, w8, S/8, S/8)
        x = self.up_to_4(x, layer1)  # (B, w4, S/4, S/4)
        x = self.up_to_2(x, stem)  # (B, w2, S/2, S/2)
        x = F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)  # (B, w2, S, S)
        return self.classifier(self.full_resolution(x))  # (B, K, S, S)


class SegmentationModel(nn.Module):
    """Trunk (shared with, or copied from, a MeDSLIP model) + `SegmentationHead`.

    With `freeze_trunk` the trunk gets no gradients and stays in eval mode (BatchNorm statistics of the
    pre-trained trunk are kept), so only the decoder is fine-tuned.
    """

    def __init__(
        self,
        trunk: ResNetTrunk,
        num_structures: int = len(SEGMENTATION_STRUCTURES),
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
        freeze_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = SegmentationHead(trunk.stage_channels, num_structures, decoder_channels)
        self.freeze_trunk = freeze_trunk
        #: frozen head whose logits give the finding maps' body prior; None: `head` gives it
        self.prior_head: SegmentationHead | None = None
        if freeze_trunk:
            self.trunk.requires_grad_(False)
            self.trunk.eval()

    def attach_prior_head(self, state: dict[str, torch.Tensor], decoder_channels: Sequence[int]) -> None:
        """Keep a trained head (its state and widths), frozen and in eval mode, as the prior head."""
        prior = SegmentationHead(
            self.trunk.stage_channels, int(self.head.classifier.out_channels), decoder_channels
        )
        prior.load_state_dict(state)
        self.prior_head = prior.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> SegmentationModel:
        """Like nn.Module.train, but a frozen trunk and the prior head stay in eval mode."""
        super().train(mode)
        if self.freeze_trunk:
            self.trunk.eval()
        if self.prior_head is not None:
            self.prior_head.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) normalised -> logits (B, K, S, S) in `SEGMENTATION_STRUCTURES` order."""
        stages = self.trunk.forward_stages(images)
        return self.head(stages, (images.shape[-2], images.shape[-1]))

    def masks_and_prior(
        self, stages: Sequence[torch.Tensor], size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk stages -> (mask logits, prior logits), each (B, K, S, S); the same tensor twice when
        there is no prior head, so a one-head model runs its decoder once."""
        masks = self.head(stages, size)
        return masks, masks if self.prior_head is None else self.prior_head(stages, size)

    def prior_logits(self, stages: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Trunk stages -> (B, K, S, S) logits of the head that gives the body prior, alone."""
        return (self.head if self.prior_head is None else self.prior_head)(stages, size)


class MeDSLIPWithSegmentation(nn.Module):
    """MeDSLIP and a `SegmentationHead` on ONE trunk, run once per image (joint pretraining).

    Sharing the trunk is what lets the exported graph serve classification, grounding and masks for the
    cost of one ResNet; training both from the start gives the trunk the boundary detail that a head
    fine-tuned on frozen from-scratch features lacked.
    """

    def __init__(self, medslip: MeDSLIP, head: SegmentationHead) -> None:
        super().__init__()
        self.medslip = medslip
        self.head = head

    def forward(self, images: torch.Tensor) -> tuple[MeDSLIPOutput, torch.Tensor]:
        """images (B, 3, S, S) -> (MeDSLIP output with the built-in books, logits (B, K, S, S))."""
        stages = self.medslip.res_features.forward_stages(images)  # stem..layer3
        output = self.medslip(images, grid=stages[-1])
        return output, self.head(stages, (images.shape[-2], images.shape[-1]))
