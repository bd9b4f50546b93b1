"""`medslip-finetune-seg --config FILE --init CKPT`: anatomy segmentation on the pretrained trunk.

`SegmentationModel` (U-Net decoder on the MeDSLIP trunk) learns the 5 structures of JSRT/SCR with
Dice + BCE per structure. covid-chestxray ships ONE mask covering both lungs: splitting it by the image
midline would teach wrong sides (the mediastinum is not centred, rotated films). When that mask is two
separate blobs side by side (423 of 451), `training.data.dataset.split_lungs` assigns them to the lung
channels; every such image also trains a `lungs` union target: the soft union 1 - (1 - p_right)(1 - p_left)
of the two lung channels. Channels an image has no mask for have loss mask 0 (`mask_valid`).

With `task.freeze_trunk: true` (default) the pretrained trunk is unchanged, so one trunk serves both the
MeDSLIP heads and the segmentation head in the exported bundle. The final output
`segmentation_final.pt` is a regular model checkpoint (`model` = the MeDSLIP state with the trunk used,
`model_config`) plus `segmentation_head` (state) and `segmentation` (structures, decoder settings).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from training.config_io import config_from_dict, config_to_dict
from training.data.dataset import Sample, SegmentationDataset
from training.model import (
    SEGMENTATION_STRUCTURES,
    MeDSLIP,
    SegmentationModel,
    cpu_state,
    load_checkpoint,
    save_checkpoint,
)
from training.trainer.config import TrainConfig
from training.trainer.distributed import DistInfo
from training.trainer.loop import Trainer
from training.trainer.setup import (
    check_image_size,
    fit,
    load_records,
    run_task,
    transforms,
)
from training.trainer.state import seed_everything

logger = logging.getLogger(__name__)

SEGMENTATION_CHECKPOINT = "segmentation_final.pt"


@dataclass
class SegmentationTaskConfig:
    freeze_trunk: bool = (
        True  # keep the pretrained trunk (one trunk for MeDSLIP + segmentation in the bundle)
    )
    decoder_channels: tuple[int, int, int, int] = (256, 128, 64, 32)  # U-Net decoder widths
    dice_weight: float = 1.0  # weight of the soft Dice terms
    bce_weight: float = 1.0  # weight of the BCE terms
    lungs_weight: float = 1.0  # weight of the lungs-union terms (covid-chestxray single lung mask)
    balance_structures: bool = True  # each structure weighs the same, however few images annotate it
    #: what becomes of an init checkpoint's own head of the same widths: "continue" it, "fresh" (ignore
    #: it), or "reset_classifier" (keep its decoder, re-draw the final 1x1 layer: a channel that joint
    #: training left saturated at "absent" gets gradients again; see docs/training.md)
    head_init: Literal["continue", "reset_classifier", "fresh"] = "continue"
    #: keep the init checkpoint's head (or its own prior head, when it has one) unchanged and frozen as
    #: the prior head: the finding maps keep the body prior they were measured with while this stage
    #: trains the masks (see training/model/segmentation.py); needs an init head of the same outputs
    keep_prior_head: bool = False
    #: output channels, one per manifest mask key; the bundle contract's five by default (a benchmark
    #: such as SIIM-ACR trains ["pneumothorax"]; the lungs-union terms need both lungs in the list)
    structures: list[str] = field(default_factory=lambda: list(SEGMENTATION_STRUCTURES))


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Dice per (sample, channel) over the spatial dims: (B, K, H, W) -> (B, K)."""
    intersection = (probs * target).sum(dim=(-2, -1))
    denominator = probs.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return 1.0 - (2.0 * intersection + 1.0) / (denominator + 1.0)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _structure_balanced_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, K) terms -> mean over structures of each structure's mean over the images annotating it.

    Only JSRT annotates heart and clavicles (~1 image in 4 of a mixed batch); a plain masked mean lets
    the lung channels of the covid images outvote them, and the thin clavicles collapse to empty masks.
    """
    per_structure = (values * mask).sum(dim=0) / mask.sum(dim=0).clamp_min(1.0)  # (K,)
    present = (mask.sum(dim=0) > 0).to(values.dtype)  # (K,)
    return (per_structure * present).sum() / present.sum().clamp_min(1.0)


def segmentation_terms(
    logits: torch.Tensor, batch: Sample, task: SegmentationTaskConfig
) -> dict[str, torch.Tensor]:
    """logits (B, K, S, S) in `task.structures` order -> masked Dice + BCE terms and "total".

    Shared by the segmentation fine-tune and joint pretraining (where most images have no masks:
    `mask_valid` / `lungs_valid` 0 leave them out of every term).
    """
    logits = logits.float()
    masks, valid = batch["masks"], batch["mask_valid"]  # (B, K, S, S), (B, K)
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").mean(dim=(-2, -1))  # (B, K)
    probs = logits.sigmoid()
    dice = soft_dice_loss(probs, masks)  # (B, K)
    reduce = _structure_balanced_mean if task.balance_structures else _masked_mean
    if not {"right_lung", "left_lung"} <= set(task.structures):  # no lungs: no union terms
        terms = {"bce": reduce(bce, valid), "dice": reduce(dice, valid)}
        terms["total"] = task.bce_weight * terms["bce"] + task.dice_weight * terms["dice"]
        return terms
    right, left = task.structures.index("right_lung"), task.structures.index("left_lung")
    # Union of the two lung channels vs the single lungs mask (valid on every image that has one).
    union = 1.0 - (1.0 - probs[:, right]) * (1.0 - probs[:, left])  # (B, S, S)
    union = union.clamp(1e-6, 1.0 - 1e-6)
    lungs, lungs_valid = batch["lungs"], batch["lungs_valid"]  # (B, S, S), (B,)
    lungs_bce = F.binary_cross_entropy(union, lungs, reduction="none").mean(dim=(-2, -1))  # (B,)
    lungs_dice = soft_dice_loss(union.unsqueeze(1), lungs.unsqueeze(1)).squeeze(1)  # (B,)
    terms = {
        "bce": reduce(bce, valid),
        "dice": reduce(dice, valid),
        "lungs_bce": _masked_mean(lungs_bce, lungs_valid),
        "lungs_dice": _masked_mean(lungs_dice, lungs_valid),
    }
    terms["total"] = (
        task.bce_weight * terms["bce"]
        + task.dice_weight * terms["dice"]
        + task.lungs_weight * (task.bce_weight * terms["lungs_bce"] + task.dice_weight * terms["lungs_dice"])
    )
    return terms


class SegmentationTask:
    """Batch -> (B, K, S, S) logits -> masked Dice + BCE per structure and on the lungs union."""

    def __init__(self, task: SegmentationTaskConfig) -> None:
        self.task = task

    def losses(self, model: nn.Module, batch: Sample, *, training: bool) -> dict[str, torch.Tensor]:
        return segmentation_terms(model(batch["image"]), batch, self.task)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing random to restore."""


def build_trainer(
    config: TrainConfig, init: MeDSLIP, info: DistInfo | None = None, head: dict[str, Any] | None = None,
    prior: tuple[dict[str, Any], Sequence[int]] | None = None,
) -> tuple[Trainer, SegmentationModel, SegmentationTaskConfig]:
    """Trainer for a SegmentationModel on `init`'s trunk; `head` (a SegmentationHead state, e.g. from a
    joint pretraining run) continues that head instead of starting a fresh one; `prior` (a head state
    and its decoder widths) is attached, frozen, as the prior head."""
    seed_everything(config.run.seed)
    task_config = config_from_dict(SegmentationTaskConfig, config.task)
    if not task_config.freeze_trunk or config.data.image_size < init.config.image_size:
        check_image_size(init.config.image_size, config.data)
    elif config.data.image_size != init.config.image_size:
        # A frozen trunk and the U-Net head are resolution-agnostic: a larger input gives thin structures
        # more pixels. Such a head cannot ship in a bundle (one input size, see training.export.bundle).
        logger.warning("segmentation head trained at %d px on a trunk trained at %d px",
                       config.data.image_size, init.config.image_size)
    model = SegmentationModel(
        init.res_features,
        num_structures=len(task_config.structures),
        decoder_channels=task_config.decoder_channels,
        freeze_trunk=task_config.freeze_trunk,
    )
    if prior is not None:
        model.attach_prior_head(*prior)
    if head is not None:
        model.head.load_state_dict(head)
        if task_config.head_init == "reset_classifier":
            model.head.classifier.reset_parameters()  # every channel starts near p = 0.5 again
    train_records, val_records = load_records(config.data)
    train_transform, eval_transform = transforms(config.data)
    structures = list(task_config.structures)
    seed = config.run.seed
    train_set = SegmentationDataset(train_records, structures, train_transform, seed=seed)
    val_set = SegmentationDataset(val_records, structures, eval_transform, seed=seed) if val_records else None
    trainer = Trainer(
        model,
        SegmentationTask(task_config),
        train_set,
        val_set,
        config,
        model_config=config_to_dict(init.config),
        info=info,
    )
    return trainer, model, task_config


def save_segmentation_checkpoint(
    path: Path, init: MeDSLIP, model: SegmentationModel, task: SegmentationTaskConfig, image_size: int
) -> None:
    """MeDSLIP checkpoint (trunk = the one the head was trained on) + head state (+ the prior head) + its
    settings, with the input size the head was trained at (`image_size`, the model's own unless a
    frozen-trunk run chose a larger one)."""
    init.res_features.load_state_dict(model.trunk.state_dict())
    settings: dict[str, Any] = {
        "structures": list(task.structures),
        "threshold": 0.5,
        "decoder_channels": list(task.decoder_channels),
        "freeze_trunk": task.freeze_trunk,
        "image_size": image_size,
    }
    extra: dict[str, Any] = {}
    if model.prior_head is not None:
        extra["prior_head"] = cpu_state(model.prior_head)
        settings["prior_decoder_channels"] = list(model.prior_head.decoder_channels)
    save_checkpoint(path, init, segmentation_head=cpu_state(model.head), segmentation=settings, **extra)


def _matching_head(extra: dict[str, Any], task: SegmentationTaskConfig) -> dict[str, Any] | None:
    """The init checkpoint's segmentation head when it has one of the configured widths (joint
    pretraining writes one), so fine-tuning continues it; else None (a fresh head)."""
    if task.head_init == "fresh":
        return None
    settings = extra.get("segmentation") or {}
    same_outputs = list(settings.get("structures", SEGMENTATION_STRUCTURES)) == list(task.structures)
    same_widths = tuple(settings.get("decoder_channels", ())) == task.decoder_channels
    if "segmentation_head" in extra and same_outputs and same_widths:
        logger.info("continuing the init checkpoint's segmentation head")
        return dict(extra["segmentation_head"])
    return None


def _prior_of(extra: dict[str, Any], task: SegmentationTaskConfig) -> tuple[dict[str, Any], list[int]]:
    """The head `keep_prior_head` keeps: the init checkpoint's own prior head when it has one (a chain of
    stages keeps the first prior), else its segmentation head."""
    settings = extra.get("segmentation") or {}
    if list(settings.get("structures", ())) != list(task.structures) or "segmentation_head" not in extra:
        raise ValueError("task.keep_prior_head needs an init checkpoint with a segmentation head of the "
                         f"same structures {list(task.structures)}")
    if "prior_head" in extra:
        return dict(extra["prior_head"]), list(settings["prior_decoder_channels"])
    return dict(extra["segmentation_head"]), list(settings["decoder_channels"])


def main(argv: list[str] | None = None) -> int:
    """Console entry point (torchrun-compatible)."""

    def body(args: argparse.Namespace, config: TrainConfig, info: DistInfo) -> None:
        init, extra = load_checkpoint(args.init)
        task = config_from_dict(SegmentationTaskConfig, config.task)
        head = _matching_head(extra, task)
        prior = _prior_of(extra, task) if task.keep_prior_head else None
        trainer, model, task_config = build_trainer(config, init, info, head, prior)
        fit(trainer, args.resume)
        if trainer.info.is_main:
            save_segmentation_checkpoint(
                Path(config.run.out_dir) / SEGMENTATION_CHECKPOINT, init, model.cpu(), task_config,
                config.data.image_size,
            )

    return run_task(argv, __doc__ or "", body, init_required=True)


if __name__ == "__main__":
    raise SystemExit(main())
