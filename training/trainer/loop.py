"""The training loop shared by pretraining and both fine-tuning commands.

What differs between them is a `TrainTask` (how a batch becomes named losses); everything else —
AMP, channels_last, clipping, per-step cosine schedule, DDP, seeded resumable sampling, checkpoints,
validation, progress and logging — lives here once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.data.dataset import RecordDataset, Sample
from training.trainer.config import TrainConfig, config_to_dict
from training.trainer.distributed import DistInfo, ResumableSampler, all_reduce_mean, gather_objects
from training.trainer.ema import WeightAverage
from training.trainer.optim import build_optimizer, build_scheduler
from training.trainer.state import (
    TrainingState,
    load_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    seed_worker,
    set_rng_state,
)

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint_last.pt"
FINAL_CHECKPOINT = "checkpoint_final.pt"


class TrainTask(Protocol):
    """How one batch becomes a dict of named scalar losses, one of them "total" (the one optimised)."""

    def losses(self, model: nn.Module, batch: Sample, *, training: bool) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """'auto' -> this rank's GPU when CUDA is present, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


class Trainer:
    """Owns model, optimizer, schedule and loaders for one run; `fit()` trains, `resume()` continues."""

    def __init__(
        self,
        model: nn.Module,
        task: TrainTask,
        train_set: RecordDataset,
        val_set: RecordDataset | None,
        config: TrainConfig,
        *,
        model_config: dict[str, Any],
        info: DistInfo | None = None,
    ) -> None:
        self.config = config
        self.info = info or DistInfo()
        self.device = resolve_device(config.run.device, self.info)
        self.task = task
        self.model_config = model_config
        self.model = model.to(self.device)
        if config.run.channels_last:
            # nn.Module.to accepts memory_format at run time; torch's stubs do not list it.
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.forward_model: nn.Module = self.model
        if self.info.world_size > 1:
            self.forward_model = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.run.find_unused_parameters,
            )
        if self.info.world_size > 1:
            # Identical weights are in place (DDP broadcast rank 0's); from here each rank draws its own
            # dropout masks instead of repeating rank 0's on different images.
            torch.manual_seed(config.run.seed + self.info.rank)
        self.train_set = train_set
        self.val_set = val_set
        self.sampler = ResumableSampler(len(train_set), self.info, seed=config.run.seed, shuffle=True)
        self.steps_per_epoch = self.sampler.per_rank // config.data.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.sampler.per_rank} training images per process is less than one batch "
                f"of {config.data.batch_size}"
            )
        self.total_steps = config.schedule.total_steps or config.schedule.epochs * self.steps_per_epoch
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = build_scheduler(
            self.optimizer, config.schedule, self.total_steps, self.steps_per_epoch
        )
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.state = TrainingState()
        self.out_dir = Path(config.run.out_dir)
        # One average per decay, of the unwrapped model (identical on every rank under DDP).
        self.averages = [WeightAverage(self.model, decay) for decay in config.run.ema_decays]

    # ------------------------------------------------------------------ set-up helpers
    def _amp_dtype(self) -> torch.dtype | None:
        mode = self.config.run.amp
        if mode == "none":
            return None
        if self.device.type == "cpu":
            if mode == "fp16":
                raise ValueError("fp16 autocast is not supported on CPU; use amp: bf16 with amp_on_cpu: true")
            return torch.bfloat16 if self.config.run.amp_on_cpu else None
        return torch.bfloat16 if mode == "bf16" else torch.float16

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _loader(
        self, dataset: RecordDataset, sampler: ResumableSampler, *, drop_last: bool
    ) -> DataLoader[Sample]:
        # A private generator keeps DataLoader's own seed draw off torch's global RNG (exact resume).
        generator = torch.Generator().manual_seed(self.config.run.seed)
        return DataLoader(
            dataset,
            batch_size=self.config.data.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.config.data.num_workers,
            worker_init_fn=seed_worker,
            generator=generator,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _to_device(self, batch: Sample) -> Sample:
        moved = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
        if self.config.run.channels_last and moved["image"].ndim == 4:
            moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
        return moved

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: Sample) -> dict[str, float]:
        """One optimizer step; returns every named loss term as a float."""
        self.forward_model.train()
        batch = self._to_device(batch)
        with self._autocast():
            terms = self.task.losses(self.forward_model, batch, training=True)
        total = terms["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {self.state.step}: {float(total)}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        for average in self.averages:
            average.update(self.model)
        self.state.step += 1
        return {name: float(value.detach()) for name, value in terms.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean of every loss term over the validation set (averaged over ranks)."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        self.forward_model.eval()
        sampler = ResumableSampler(len(self.val_set), self.info, seed=self.config.run.seed, shuffle=False)
        sums: dict[str, float] = {}
        batches = 0
        for batch in self._loader(self.val_set, sampler, drop_last=False):
            with self._autocast():
                terms = self.task.losses(self.forward_model, self._to_device(batch), training=False)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value)
            batches += 1
        means = {name: value / max(batches, 1) for name, value in sums.items()}
        return all_reduce_mean(means, self.info, self.device)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path) -> None:
        """Write a full training checkpoint. Every rank calls it (RNG states are gathered); rank 0 writes."""
        rng_per_rank = gather_objects(rng_state(), self.info)
        task_per_rank = gather_objects(self.task.state_dict(), self.info)
        if not self.info.is_main:
            return
        save_training_checkpoint(
            path,
            model_state=self.model.state_dict(),
            model_config=self.model_config,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=self.state,
            train_config=config_to_dict(self.config),
            extra={
                "task": task_per_rank[0],
                "task_per_rank": task_per_rank,
                "rng_per_rank": rng_per_rank,
                "ema": [average.state_dict() for average in self.averages],
            },
        )

    def resume(self, path: Path) -> None:
        """Restore everything `save` wrote; the next `fit()` continues with the exact next batch."""
        payload = load_training_checkpoint(path)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = TrainingState(
            step=payload["step"], epoch=payload["epoch"], batch_in_epoch=payload["batch_in_epoch"]
        )
        extra = payload.get("extra", {})
        saved_averages = extra.get("ema", [])
        if len(saved_averages) != len(self.averages):
            raise ValueError(
                f"{path.name} holds {len(saved_averages)} weight averages; run.ema_decays asks for "
                f"{len(self.averages)}: resume with the configuration the run started with"
            )
        for average, saved in zip(self.averages, saved_averages, strict=True):
            average.load_state_dict(saved)
        # Each rank continues its own random streams when the job size is unchanged; else rank 0's.
        same_size = len(extra.get("rng_per_rank", [])) == self.info.world_size
        rank = self.info.rank if same_size else 0
        self.task.load_state_dict(extra["task_per_rank"][rank] if same_size else extra.get("task", {}))
        set_rng_state(extra["rng_per_rank"][rank] if same_size else payload["rng"])
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            path,
            self.state.step,
            self.state.epoch,
            self.state.batch_in_epoch,
        )

    @contextlib.contextmanager
    def averaged_weights(self, average: WeightAverage) -> Iterator[nn.Module]:
        """The model with `average`'s weights loaded for the duration of the block, then its own again."""
        own = {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()}
        average.copy_to(self.model)
        try:
            yield self.model
        finally:
            self.model.load_state_dict(own)

    # ------------------------------------------------------------------ the loop
    def _epoch_batches(self) -> Iterator[Sample]:
        self.sampler.set_epoch(self.state.epoch, skip=self.state.batch_in_epoch * self.config.data.batch_size)
        self.train_set.set_epoch(self.state.epoch)
        yield from self._loader(self.train_set, self.sampler, drop_last=True)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _run_validation(self) -> None:
        values = self.validate()
        if values and self.info.is_main:
            logger.info(
                "val step %d: %s",
                self.state.step,
                " ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())),
            )
            self._log({"split": "val", "step": self.state.step, "epoch": self.state.epoch, **values})

    def fit(self) -> list[dict[str, float]]:
        """Train until the schedule (or run.max_steps) ends; returns the per-step losses of this call."""
        run = self.config.run
        stop_at = min(run.max_steps or self.total_steps, self.total_steps)
        show_bar = run.progress and self.info.is_main and sys.stderr.isatty()
        bar = tqdm(total=stop_at, initial=self.state.step, disable=not show_bar, dynamic_ncols=True)
        logger.info(
            "training %d steps (%d per epoch, batch %d x %d processes) on %s, amp=%s",
            stop_at,
            self.steps_per_epoch,
            self.config.data.batch_size,
            self.info.world_size,
            self.device,
            self.amp_dtype,
        )
        history: list[dict[str, float]] = []
        while self.state.step < stop_at:
            for batch in self._epoch_batches():
                terms = self.train_step(batch)
                self.state.batch_in_epoch += 1
                history.append(terms)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()}, refresh=False)
                step = self.state.step
                if self.info.is_main and (step % max(run.log_every, 1) == 0 or step == stop_at):
                    lr = self.scheduler.get_last_lr()[0]
                    logger.info(
                        "step %d/%d epoch %d lr %.3g %s",
                        step,
                        stop_at,
                        self.state.epoch,
                        lr,
                        " ".join(f"{k}={v:.4f}" for k, v in sorted(terms.items())),
                    )
                    self._log({"split": "train", "step": step, "epoch": self.state.epoch, "lr": lr, **terms})
                if self.state.batch_in_epoch >= self.steps_per_epoch:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
                if run.checkpoint_every and step % run.checkpoint_every == 0 and step < stop_at:
                    self.save(self.out_dir / LAST_CHECKPOINT)
                if run.val_every and step % run.val_every == 0 and step < stop_at:
                    self._run_validation()
                if step >= stop_at or self.state.batch_in_epoch == 0:
                    break
            if not run.val_every and self.state.batch_in_epoch == 0 and self.state.step < stop_at:
                self._run_validation()
        bar.close()
        self._run_validation()
        self.save(self.out_dir / LAST_CHECKPOINT)
        self.save(self.out_dir / FINAL_CHECKPOINT)
        if history:
            logger.info(
                "finished at step %d; last losses %s",
                self.state.step,
                {k: round(v, 4) for k, v in history[-1].items() if math.isfinite(v)},
            )
        return history
