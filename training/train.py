"""`medslip-train --config FILE [--resume CKPT] [--override key=value ...]`: MeDSLIP pretraining.

Image-report pairs -> report labels (parse_report) -> the five named MeDSLIP losses. The query books are
encoded once by the frozen text encoder at start and stored as model buffers, so every checkpoint
carries them and export/evaluation never need the text encoder again.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from training.config_io import config_to_dict
from training.data.dataset import PretrainDataset, Sample
from training.losses import LossConfig, medslip_losses
from training.model import MeDSLIP, TextEncoder, build_query_books, create_model
from training.trainer.config import TrainConfig
from training.trainer.distributed import DistInfo, cleanup_distributed, init_distributed, process_device_type
from training.trainer.loop import Trainer, resolve_device
from training.trainer.setup import (
    base_parser,
    check_image_size,
    configure_logging,
    load_records,
    prepare_run,
    query_books,
    transforms,
)
from training.trainer.state import seed_everything

logger = logging.getLogger(__name__)


class PretrainTask:
    """Batch -> MeDSLIP output with the built-in books -> named losses.

    The ProtoCL negative sampler has its own generator (saved in checkpoints for exact resume);
    validation uses a fresh generator with a fixed seed so it neither perturbs training nor varies.
    """

    def __init__(self, loss_config: LossConfig, seed: int, device: torch.device) -> None:
        self.loss_config = loss_config
        self.seed = seed
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def losses(self, model: nn.Module, batch: Sample, *, training: bool) -> dict[str, torch.Tensor]:
        pathology_book, anatomy_book = query_books(model)
        output = model(batch["image"])
        generator = self.generator if training else torch.Generator(device=self.device).manual_seed(self.seed)
        return medslip_losses(
            output, batch, pathology_book, anatomy_book, config=self.loss_config, generator=generator
        )

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])


def build_model(config: TrainConfig) -> MeDSLIP:
    """Registry model with config overrides; books from the text encoder when `model.build_books`."""
    model = create_model(config.model.name, image_size=config.data.image_size, **config.model.overrides)
    if config.model.build_books:
        encoder = TextEncoder.from_config(model.config)
        pathology_book, anatomy_book = build_query_books(encoder)  # (75, T), (51, T)
        model.set_query_books(pathology_book, anatomy_book)
        logger.info(
            "query books encoded with %s: pathology %s, anatomy %s",
            model.config.text_encoder,
            tuple(pathology_book.shape),
            tuple(anatomy_book.shape),
        )
    return model


def build_trainer(config: TrainConfig, info: DistInfo | None = None) -> Trainer:
    """Everything `main` does except running: used by tests and the benchmark too."""
    info = info or DistInfo()
    seed_everything(config.run.seed)  # same initial weights on every rank and every run
    model = build_model(config)
    check_image_size(model.config.image_size, config.data)
    train_records, val_records = load_records(config.data)
    train_transform, eval_transform = transforms(config.data)
    train_set = PretrainDataset(train_records, train_transform, seed=config.run.seed)
    val_set = PretrainDataset(val_records, eval_transform, seed=config.run.seed) if val_records else None
    task = PretrainTask(config.loss, config.run.seed + info.rank, resolve_device(config.run.device, info))
    return Trainer(
        model, task, train_set, val_set, config, model_config=config_to_dict(model.config), info=info
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point; under torchrun every rank runs this."""
    args = base_parser(__doc__ or "").parse_args(argv)
    config = prepare_run(args)
    info = init_distributed(process_device_type(config.run.device))
    configure_logging(info)
    try:
        trainer = build_trainer(config, info)
        if args.resume is not None:
            trainer.resume(args.resume)
        trainer.fit()
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
