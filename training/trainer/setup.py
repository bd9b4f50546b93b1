"""Run set-up shared by `medslip-train` and the fine-tuning commands: config, logging, seeds, data."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from app.contract.imaging import PreprocessingSpec
from training.data.augment import transforms_from_spec
from training.data.dataset import PairTransform
from training.data.manifest import ManifestRecord, filter_split
from training.data.sources.registry import load_source
from training.model import MeDSLIP
from training.trainer.config import ConfigError, DataSection, TrainConfig, load_config
from training.trainer.distributed import DistInfo, cleanup_distributed, init_distributed, process_device_type
from training.trainer.loop import Trainer

logger = logging.getLogger(__name__)


def base_parser(description: str, *, init_required: bool = False) -> argparse.ArgumentParser:
    """--config, --resume, --override (and --init for fine-tuning)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, type=Path, help="YAML training configuration")
    parser.add_argument("--resume", type=Path, default=None, help="training checkpoint to continue from")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config field, e.g. optim.lr=3e-4 (repeatable)",
    )
    if init_required:
        parser.add_argument("--init", required=True, type=Path, help="pretrained MeDSLIP checkpoint")
    return parser


def configure_logging(info: DistInfo) -> None:
    """INFO on rank 0, WARNING elsewhere (one readable log per job)."""
    logging.basicConfig(
        level=logging.INFO if info.is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def prepare_run(args: argparse.Namespace) -> TrainConfig:
    """Load the config, apply overrides, set torch threads (seeding happens in each build_trainer)."""
    try:
        config = load_config(args.config, args.override)
    except (ConfigError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    if config.run.threads > 0:
        torch.set_num_threads(config.run.threads)
    return config


#: A task's work once its run is prepared: (parsed arguments, config, process-group info) -> nothing.
TaskBody = Callable[[argparse.Namespace, TrainConfig, DistInfo], None]


def run_task(
    argv: list[str] | None,
    description: str,
    body: TaskBody,
    *,
    init_required: bool = False,
    writes_averages: bool = False,
) -> int:
    """The console skeleton every training task shares (pretraining, fine-tuning, under torchrun too):
    parse, load the config, join the process group, log once per job, run `body`, and leave the process
    group whatever happens, so a failed rank does not hang the others. A task that does not write weight
    averages refuses `run.ema_decays` rather than train them and drop them."""
    args = base_parser(description, init_required=init_required).parse_args(argv)
    config = prepare_run(args)
    if config.run.ema_decays and not writes_averages:
        raise SystemExit("error: run.ema_decays: this command writes no weight averages (medslip-train does)")
    info = init_distributed(process_device_type(config.run.device))
    configure_logging(info)
    try:
        body(args, config, info)
    finally:
        cleanup_distributed()
    return 0


def fit(trainer: Trainer, resume: Path | None) -> None:
    """Continue from `resume` (a training checkpoint) when given, then train to the schedule's end."""
    if resume is not None:
        trainer.resume(resume)
    trainer.fit()


def load_records(data: DataSection) -> tuple[list[ManifestRecord], list[ManifestRecord]]:
    """(train, val) records of every configured source, in config order; a source's training records
    are repeated `train_repeat` times, or `origin_repeat[origin]` times for the origins it names (each
    copy is augmented differently), its validation records never."""
    train: list[ManifestRecord] = []
    val: list[ManifestRecord] = []
    for spec in data.sources:
        for count in (spec.train_repeat, *spec.origin_repeat.values()):
            if count < 1:
                raise ValueError(f"train_repeat and origin_repeat must be >= 1, got {count} for {spec.kind}")
        records = load_source(
            spec.kind, spec.path, frontal_only=data.frontal_only, max_records=spec.max_records
        )
        unknown = set(spec.origin_repeat) - {record.origin for record in records}
        if unknown:
            raise ValueError(f"origin_repeat names origins {sorted(unknown)} that {spec.kind} does not have")
        for record in filter_split(records, "train"):
            train.extend([record] * spec.origin_repeat.get(record.origin, spec.train_repeat))
        val.extend(filter_split(records, "val"))
    logger.info("data: %d train / %d val records from %d sources", len(train), len(val), len(data.sources))
    return train, val


def transforms(data: DataSection) -> tuple[PairTransform, PairTransform]:
    """(train, eval) transforms of the preprocessing the exported bundle will declare
    (`PreprocessingSpec.trained`); `augment: false` trains on the eval transform."""
    spec = PreprocessingSpec.trained(data.image_size)
    evaluation = transforms_from_spec(spec, train=False)
    if not data.augment:
        return evaluation, evaluation
    train = transforms_from_spec(
        spec,
        train=True,
        crop_scale=data.crop_scale,
        num_ops=data.randaug_ops,
        magnitude=data.randaug_magnitude,
    )
    return train, evaluation


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (attributes such as query books live there)."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, nn.Module) else model


def query_books(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(pathology_book (75, T), anatomy_book (51, T)) of a MeDSLIP model, DDP-wrapped or not."""
    inner = unwrap(model)
    inner = getattr(inner, "medslip", inner)  # MeDSLIPWithSegmentation (joint pretraining)
    if not isinstance(inner, MeDSLIP):
        raise TypeError(f"expected a MeDSLIP model, got {type(inner).__name__}")
    return inner.pathology_book, inner.anatomy_book


def check_image_size(model_size: int, data: DataSection) -> None:
    """Refuse a data/model resolution mismatch before any image is decoded."""
    if model_size != data.image_size:
        raise ValueError(f"model image_size {model_size} != data.image_size {data.image_size}")
