"""`medslip-finetune-cls --config FILE --init CKPT`: supervised classification on a label set.

MeDSLIP's fine-tuning setting: the pretrained model, queried with the book embeddings of the task's
entities (e.g. `normal`, `pneumonia`), its existence head trained on the image labels with cross-entropy
(or BCE on the present-minus-absent logit). Every parameter is tuned; the anatomy stream gets no loss
here, so DDP runs need `run.find_unused_parameters: true`. Loop and checkpoints are the trainer's.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from app.contract.vocabulary import PATHOLOGY
from training.config_io import config_from_dict, config_to_dict
from training.data.dataset import ClassificationDataset, Sample
from training.model import MeDSLIP, load_checkpoint
from training.trainer.config import TrainConfig
from training.trainer.distributed import DistInfo
from training.trainer.loop import Trainer
from training.trainer.setup import (
    check_image_size,
    fit,
    load_records,
    query_books,
    run_task,
    transforms,
)
from training.trainer.state import seed_everything

logger = logging.getLogger(__name__)


@dataclass
class ClassificationTaskConfig:
    labels: list[str] = field(default_factory=lambda: ["pneumonia"])  # manifest label names to learn
    entities: dict[str, str] = field(default_factory=dict)  # label -> pathology entity (default: same name)
    objective: Literal["ce", "bce"] = "ce"  # 2-way CE on the existence head, or BCE on logit[1] - logit[0]


class ClassificationTask:
    """Batch -> existence logits of the task's entity queries -> masked CE/BCE against labels."""

    def __init__(self, task: ClassificationTaskConfig) -> None:
        self.task = task
        names = [task.entities.get(label, label) for label in task.labels]
        unknown = [name for name in names if name not in PATHOLOGY]
        if unknown:
            raise ValueError(f"labels without a pathology entity: {unknown}; map them in task.entities")
        self.query_index = torch.tensor([PATHOLOGY.index(name) for name in names])  # (L,)

    def losses(self, model: nn.Module, batch: Sample, *, training: bool) -> dict[str, torch.Tensor]:
        book, _ = query_books(model)  # (75, T)
        queries = book[self.query_index.to(book.device)]  # (L, T)
        logits = model(batch["image"], pathology_queries=queries).pathology_logits.float()  # (B, L, 2)
        labels, mask = batch["labels"], batch["label_mask"]  # (B, L), (B, L)
        if self.task.objective == "ce":
            per_label = F.cross_entropy(logits.flatten(0, 1), labels.long().flatten(), reduction="none")
        else:
            margin = logits[..., 1] - logits[..., 0]  # (B, L)
            per_label = F.binary_cross_entropy_with_logits(
                margin.flatten(), labels.flatten(), reduction="none"
            )
        loss = (per_label * mask.flatten()).sum() / mask.sum().clamp_min(1.0)
        accuracy = (
            ((logits[..., 1] > logits[..., 0]).float() == labels).float() * mask
        ).sum() / mask.sum().clamp_min(1.0)
        return {"classification": loss, "accuracy": accuracy.detach(), "total": loss}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing random to restore."""


def build_trainer(config: TrainConfig, init: MeDSLIP, info: DistInfo | None = None) -> Trainer:
    """Trainer fine-tuning `init` on the configured labels."""
    seed_everything(config.run.seed)
    task_config = config_from_dict(ClassificationTaskConfig, config.task)
    check_image_size(init.config.image_size, config.data)
    train_records, val_records = load_records(config.data)
    train_transform, eval_transform = transforms(config.data)
    seed = config.run.seed
    train_set = ClassificationDataset(train_records, task_config.labels, train_transform, seed=seed)
    val_set = (
        ClassificationDataset(val_records, task_config.labels, eval_transform, seed=seed)
        if val_records
        else None
    )
    return Trainer(
        init,
        ClassificationTask(task_config),
        train_set,
        val_set,
        config,
        model_config=config_to_dict(init.config),
        info=info,
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point (torchrun-compatible)."""

    def body(args: argparse.Namespace, config: TrainConfig, info: DistInfo) -> None:
        model, _ = load_checkpoint(args.init)
        fit(build_trainer(config, model, info), args.resume)

    return run_task(argv, __doc__ or "", body, init_required=True)


if __name__ == "__main__":
    raise SystemExit(main())
