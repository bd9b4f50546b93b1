"""AdamW with released hyper-parameters and a step-based linear-warm-up cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.trainer.config import OptimSection, ScheduleSection

#: Parameter-name fragments of learned embeddings that are not nn.Embedding modules.
_NO_DECAY_NAME_PARTS = ("pos_embed", "query_embed", "cls_token")
_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
#: Parameter-name fragment of the image trunk (MeDSLIP's `res_features`, shared by the segmentation head).
TRUNK_NAME_PART = "res_features."


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Two groups: decayed weights, and norms/biases/embeddings undecayed.

    Decaying a norm's gain or a bias only pulls it towards 0 with no regularising benefit (BERT/CLIP
    practice); the same for embedding tables, whose rows see few gradient updates. Linear projections
    that happen to be *named* "embedding" (MeDSLIP's pathology_embedding_layer) are ordinary weights.
    """
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NO_DECAY_MODULES):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if (
            id(parameter) in no_decay_ids
            or parameter.ndim <= 1
            or any(part in name for part in _NO_DECAY_NAME_PARTS)
        ):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimSection) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`; with `trunk_lr_scale` != 1 the trunk's groups get their own rate.

    Why a second rate: one lower rate for the whole model lifted most NIH findings and lowered those
    whose evidence is a film-wide texture (docs/training.md); a rate per part can tell which part wants
    which. Each group carries its own `lr`, so the schedule's factor scales both rates alike."""
    if config.trunk_lr_scale <= 0:
        raise ValueError(f"trunk_lr_scale must be positive, got {config.trunk_lr_scale}")
    if config.trunk_lr_scale == 1.0:
        groups = parameter_groups(model, config.weight_decay)
    else:
        groups = _split_trunk(model, config)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)


def _split_trunk(model: nn.Module, config: OptimSection) -> list[dict[str, object]]:
    """`parameter_groups` split into trunk and non-trunk groups with their own `lr`; empty ones dropped."""
    trunk_ids = {id(p) for name, p in model.named_parameters() if TRUNK_NAME_PART in name}
    if not trunk_ids:
        raise ValueError(f"trunk_lr_scale needs a trunk: no parameter name contains {TRUNK_NAME_PART!r}")
    split: list[dict[str, object]] = []
    for group in parameter_groups(model, config.weight_decay):
        params = group["params"]
        assert isinstance(params, list)
        for in_trunk, scale in ((False, 1.0), (True, config.trunk_lr_scale)):
            chosen = [p for p in params if (id(p) in trunk_ids) == in_trunk]
            if chosen:
                split.append({**group, "params": chosen, "lr": config.lr * scale})
    return split


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier at optimizer step `step`: linear 0->1 over warm-up, then cosine 1->min_lr_ratio."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps(config: ScheduleSection, steps_per_epoch: int) -> int:
    """`warmup_steps`, or `warmup_epochs` converted with the run's steps per epoch."""
    return config.warmup_steps or round(config.warmup_epochs * steps_per_epoch)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleSection, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR (stepped after every optimizer step, so warm-up is in steps, not epochs)."""
    warmup = warmup_steps(config, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup, total_steps, config.min_lr_ratio)
    )
