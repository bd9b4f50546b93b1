"""The checkpoint format shared by pre-training, fine-tuning, import and export.

A checkpoint is `torch.save`d dict: `{"model": state_dict, "model_config": asdict(ModelConfig), ...}`;
any other top-level keys (epoch, optimizer, loss_config, metrics, ...) are the writer's business and are
handed back untouched. Because the config travels with the weights (and the query books are buffers in
the state_dict), a checkpoint alone rebuilds the exact model: no code constants, no text encoder needed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config_io import config_from_dict, config_to_dict
from training.model.config import ModelConfig
from training.model.medslip import MeDSLIP

logger = logging.getLogger(__name__)

MODEL_KEY = "model"
CONFIG_KEY = "model_config"


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state_dict with every tensor detached and on the CPU (what checkpoints hold)."""
    return {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}


def save_checkpoint(path: str | Path, model: MeDSLIP, **extra: Any) -> None:
    """Write `model` (state_dict + config) and any `extra` entries to `path`, atomically."""
    reserved = {MODEL_KEY, CONFIG_KEY} & set(extra)
    if reserved:
        raise ValueError(f"extra entries may not use reserved keys: {', '.join(sorted(reserved))}")
    path = Path(path)
    payload: dict[str, Any] = {
        MODEL_KEY: cpu_state(model),
        CONFIG_KEY: config_to_dict(model.config),
        **extra,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    logger.info("saved checkpoint %s", path.name)


def model_from_state(state: Mapping[str, Any], strict: bool = True) -> MeDSLIP:
    """Rebuild a model from an already loaded checkpoint dict (see module docstring)."""
    if MODEL_KEY not in state or CONFIG_KEY not in state:
        raise ValueError(f"not a medslip checkpoint: needs {MODEL_KEY!r} and {CONFIG_KEY!r} entries")
    config = config_from_dict(ModelConfig, state[CONFIG_KEY])
    model = MeDSLIP(config)
    model.load_state_dict(state[MODEL_KEY], strict=strict)
    return model


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", strict: bool = True
) -> tuple[MeDSLIP, dict[str, Any]]:
    """-> (model in eval mode, the other top-level entries). Loads with weights_only=True (no pickle code)."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{Path(path).name}: checkpoint must be a dict")
    model = model_from_state(state, strict=strict)
    model.eval()
    extra = {key: value for key, value in state.items() if key not in (MODEL_KEY, CONFIG_KEY)}
    return model, extra
