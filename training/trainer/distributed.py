"""torchrun / env:// process-group set-up and the rank helpers the loop needs.

A single process (no WORLD_SIZE in the environment) is world size 1, so the same code path serves
laptop runs, tests and multi-GPU jobs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun job when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU); else world size 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # NCCL collectives use it
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        logger.info("joined process group: backend=%s world_size=%d", backend, world_size)
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def process_device_type(requested: str) -> str:
    """ "cuda" when the run asks for a GPU (or "auto") and one exists, else "cpu": picks NCCL vs gloo."""
    return "cuda" if requested != "cpu" and torch.cuda.is_available() else "cpu"


def cleanup_distributed() -> None:
    """Leave the process group if we joined one.

    The barrier first: a rank that tears gloo down while a peer is still inside a collective (rank 0
    writing a checkpoint after gathering every rank's RNG state, say) aborts the peer's process.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average scalar metrics over ranks (validation losses) so rank 0 logs the job-wide value."""
    if info.world_size == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return {k: float(v) / info.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def gather_objects(value: Any, info: DistInfo) -> list[Any]:
    """`value` of every rank, in rank order (a one-item list in a single process)."""
    if info.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


class ResumableSampler(Sampler[int]):
    """DistributedSampler semantics (seeded per-epoch shuffle, rank-strided, padded to equal length)
    plus `skip`: the first `skip` indices of this rank's epoch are dropped, so a mid-epoch resume
    continues with exactly the batches the uninterrupted run would have seen, without decoding the
    skipped images.
    """

    def __init__(self, length: int, info: DistInfo, seed: int, shuffle: bool = True) -> None:
        self.length = length
        self.info = info
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0
        self.per_rank = -(-length // info.world_size)  # ceil

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def indices(self) -> list[int]:
        """This rank's full epoch order (before `skip`)."""
        order = (
            np.random.default_rng((self.seed, self.epoch)).permutation(self.length)
            if self.shuffle
            else np.arange(self.length)
        )
        total = self.per_rank * self.info.world_size
        padded = np.resize(order, total)  # repeat from the start so every rank gets per_rank indices
        return [int(i) for i in padded[self.info.rank : total : self.info.world_size]]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.skip :])

    def __len__(self) -> int:
        return max(self.per_rank - self.skip, 0)
