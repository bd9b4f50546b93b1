"""Seeding and the full training checkpoint (model, optimizer, scheduler, counters, config, RNG states).

The model part follows the package's checkpoint format (`{"model": state_dict, "model_config": ...}`,
shared with import_official and export); training adds its own keys beside it, so any training
checkpoint is also a model checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global RNG and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: derive python/numpy seeds from torch's per-worker seed.

    Augmentation is reseeded per sample anyway; this keeps any other random call in a worker
    (third-party code) distinct per worker and reproducible.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed + worker_id)
    np.random.seed((worker_seed + worker_id) % 2**32)


def rng_state() -> dict[str, Any]:
    """Every global RNG state that can affect the next step (dropout draws, sampling).

    Stored as tensors / plain Python values only, so checkpoints load with `weights_only=True`
    (numpy's MT19937 key array becomes an int64 tensor).
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `rng_state()` output."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainingState:
    """Where the loop is: optimizer steps done and the epoch / batch inside it to continue from."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def save_training_checkpoint(
    path: Path,
    *,
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainingState,
    train_config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomic write (tmp file + rename): a crash mid-save never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model_state,
        "model_config": model_config,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "train_config": train_config,
        "rng": rng_state(),
        "extra": extra or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    logger.info("saved checkpoint %s (step %d)", path, state.step)


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_training_checkpoint` (weights_only: no pickled code runs)."""
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"model", "optimizer", "scheduler", "step", "rng"} - set(payload)
    if missing:
        raise ValueError(f"{path.name} is not a training checkpoint (missing {sorted(missing)})")
    return payload
