"""`medslip-train --config FILE [--resume CKPT] [--override key=value ...]`: MeDSLIP pretraining.

Image-report pairs -> report labels (parse_report) -> the five named MeDSLIP losses. The query books are
encoded once by the frozen text encoder at start and stored as model buffers, so every checkpoint
carries them and export/evaluation never need the text encoder again.

Joint segmentation (`task.segmentation_weight` > 0): a `SegmentationHead` on the same trunk learns the
organ masks of the records that have them (JSRT, covid-chestxray) in the same batches; its Dice/BCE terms
are logged as `seg_*` beside the MeDSLIP terms. The run then also writes `medslip_final.pt` (the MeDSLIP
checkpoint) and `segmentation_final.pt` (the same + the head), the formats export and evaluation read.

Extra objectives (`objectives:` entries, training.objectives): ASG's and MLIP's terms on the same trunk
and batches, logged by name; their heads are training-only, so `medslip_final.pt` is written without them.

Weight averages (`run.ema_decays`): the same model files again, from each average, in `ema-<decay>/`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config_io import config_from_dict, config_to_dict
from training.data.dataset import PretrainDataset, Sample
from training.model import (
    SEGMENTATION_STRUCTURES,
    MeDSLIP,
    MeDSLIPWithSegmentation,
    SegmentationHead,
    TextEncoder,
    build_query_books,
    cpu_state,
    create_model,
    save_checkpoint,
)
from training.objectives.model import MeDSLIPWithObjectives
from training.objectives.setup import ObjectiveRun, build_objectives
from training.tasks.finetune_seg import SEGMENTATION_CHECKPOINT, SegmentationTaskConfig, segmentation_terms
from training.tasks.losses import LossConfig, medslip_losses
from training.trainer.config import TrainConfig
from training.trainer.distributed import DistInfo
from training.trainer.ema import ema_folder
from training.trainer.loop import Trainer, resolve_device
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

MEDSLIP_CHECKPOINT = "medslip_final.pt"


@dataclass
class PretrainTaskConfig:
    """`task:` of a pretraining config: the optional joint segmentation head."""

    segmentation_weight: float = 0.0  # 0: MeDSLIP only; > 0: weight of the joint segmentation total
    segmentation: dict[str, Any] = field(default_factory=dict)  # SegmentationTaskConfig fields

    def segmentation_config(self) -> SegmentationTaskConfig:
        return config_from_dict(SegmentationTaskConfig, {**self.segmentation, "freeze_trunk": False})


class PretrainTask:
    """Batch -> MeDSLIP output with the built-in books -> named losses.

    The ProtoCL negative sampler has its own generator (saved in checkpoints for exact resume);
    validation uses a fresh generator with a fixed seed so it neither perturbs training nor varies.
    """

    def __init__(
        self,
        loss_config: LossConfig,
        seed: int,
        device: torch.device,
        segmentation: tuple[float, SegmentationTaskConfig] | None = None,
        objectives: ObjectiveRun | None = None,
    ) -> None:
        self.loss_config = loss_config
        self.seed = seed
        self.device = device
        self.segmentation = segmentation
        self.objectives = objectives
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def losses(self, model: nn.Module, batch: Sample, *, training: bool) -> dict[str, torch.Tensor]:
        pathology_book, anatomy_book = query_books(model)
        generator = self.generator if training else torch.Generator(device=self.device).manual_seed(self.seed)
        if self.segmentation is None and self.objectives is None:
            return medslip_losses(
                model(batch["image"]), batch, pathology_book, anatomy_book,
                config=self.loss_config, generator=generator,
            )
        extra: dict[str, torch.Tensor] = {}
        if self.objectives is not None:
            output, logits, extra = model(batch["image"], batch)  # + the objectives' unweighted terms
        else:
            output, logits = model(batch["image"])  # MeDSLIPOutput, (B, K, S, S)
        terms = medslip_losses(
            output, batch, pathology_book, anatomy_book, config=self.loss_config, generator=generator
        )
        if self.segmentation is not None and logits is not None:
            weight, seg_config = self.segmentation
            seg = segmentation_terms(logits, batch, seg_config)
            terms.update({f"seg_{name}": value for name, value in seg.items() if name != "total"})
            terms["segmentation"] = seg["total"]
            terms["total"] = terms["total"] + weight * seg["total"]
        if self.objectives is not None:
            terms = self.objectives.add_terms(terms, extra)
        return terms

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
    task_config = config_from_dict(PretrainTaskConfig, config.task)
    joint = task_config.segmentation_weight > 0
    seg_config = task_config.segmentation_config()
    trained: nn.Module = model
    head = None
    if joint:
        channels = model.res_features.stage_channels
        head = SegmentationHead(channels, decoder_channels=seg_config.decoder_channels)
        trained = MeDSLIPWithSegmentation(model, head)
    structures = list(SEGMENTATION_STRUCTURES) if joint else None
    train_records, val_records = load_records(config.data)
    train_transform, eval_transform = transforms(config.data)
    seed = config.run.seed
    objectives = build_objectives(
        config.objectives, model, train_records + val_records, head=head, batch_size=config.data.batch_size
    )  # None: no objective enabled, MeDSLIP (+ segmentation) alone
    make_set: Callable[..., PretrainDataset] = PretrainDataset
    if objectives is not None:
        trained, make_set = objectives.model, objectives.dataset
    train_set = make_set(train_records, train_transform, seed=seed, structures=structures)
    val_set = None
    if val_records:
        val_set = make_set(val_records, eval_transform, seed=seed, structures=structures)
    task = PretrainTask(
        config.loss, seed + info.rank, resolve_device(config.run.device, info),
        (task_config.segmentation_weight, seg_config) if joint else None,
        objectives,
    )
    return Trainer(
        trained, task, train_set, val_set, config, model_config=config_to_dict(model.config), info=info
    )


def save_final_models(trainer: Trainer) -> None:
    """The final model files: after a joint run (segmentation head or extra objectives) the MeDSLIP
    checkpoint, and with a segmentation head the segmentation checkpoint (shared trunk); a plain MeDSLIP
    run's final training checkpoint is already its model checkpoint. Then the same files for each weight
    average (`run.ema_decays`) in its own sub-folder, a plain run's MeDSLIP checkpoint included."""
    if not trainer.info.is_main:
        return
    out = Path(trainer.config.run.out_dir)
    joint = isinstance(trainer.model, MeDSLIPWithSegmentation | MeDSLIPWithObjectives)
    if joint:
        _write_models(trainer, out)
    for average in trainer.averages:
        with trainer.averaged_weights(average):
            _write_models(trainer, out / ema_folder(average.decay))


def _write_models(trainer: Trainer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    medslip, head = model, None
    if isinstance(model, MeDSLIPWithSegmentation | MeDSLIPWithObjectives):
        medslip, head = model.medslip, model.head
    assert isinstance(medslip, MeDSLIP)
    # MeDSLIP only (objective heads stay out), with the schedule facts an exported card reports.
    facts = {"step": trainer.state.step, "epoch": trainer.state.epoch,
             "train_config": config_to_dict(trainer.config)}
    save_checkpoint(out / MEDSLIP_CHECKPOINT, medslip, **facts)  # tensors copied to the CPU
    if head is None:
        return
    save_checkpoint(
        out / SEGMENTATION_CHECKPOINT,
        medslip,
        segmentation_head=cpu_state(head),
        segmentation={
            "structures": list(SEGMENTATION_STRUCTURES),
            "threshold": 0.5,
            "decoder_channels": [int(c) for c in config_from_dict(
                PretrainTaskConfig, trainer.config.task).segmentation_config().decoder_channels],
            "freeze_trunk": True,  # the head reads the MeDSLIP trunk itself: one trunk in the bundle
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point; under torchrun every rank runs this."""

    def body(args: argparse.Namespace, config: TrainConfig, info: DistInfo) -> None:
        trainer = build_trainer(config, info)
        fit(trainer, args.resume)
        save_final_models(trainer)

    return run_task(argv, __doc__ or "", body, writes_averages=True)


if __name__ == "__main__":
    raise SystemExit(main())
