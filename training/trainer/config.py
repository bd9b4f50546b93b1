"""Typed training configuration (model, loss, data, optim, schedule, run) loaded from YAML.

One dataclass per section so a typo in a YAML key fails at load time with the key's dotted name,
not hours into a run. `--override a.b=value` values are parsed as YAML scalars (`1e-4`, `true`, `[1, 2]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from training.config_io import config_from_dict, config_to_dict, read_mapping
from training.objectives.config import ObjectiveSpec
from training.tasks.losses import LossConfig

__all__ = ["ConfigError", "TrainConfig", "apply_overrides", "config_to_dict", "load_config"]

SourceKind = Literal["covid", "kermany", "jsrt", "nih", "mimic", "manifest"]
AmpMode = Literal["none", "bf16", "fp16"]


class ConfigError(ValueError):
    """A configuration file or override that does not match the dataclasses."""


@dataclass
class ModelSection:
    name: str = "medslip_resnet50"  # registry name for training.model.create_model
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to change (image_size, ...)
    build_books: bool = True  # encode the query books with the text encoder at start (stored as buffers)


@dataclass
class SourceSpec:
    kind: SourceKind  # reader to use, or "manifest" for a JSONL manifest file
    path: str  # data-set folder (or manifest file); "{shared}" expands to the shared data folder
    max_records: int = 0  # keep only the first N records of each split (0 = all), for smoke runs
    train_repeat: int = 1  # each training record appears N times per epoch (oversamples a small source)
    # origin -> N: training records of that origin (the public copy a merged source took them from,
    # `ManifestRecord.origin`) appear N times per epoch instead of `train_repeat`; {} = none
    origin_repeat: dict[str, int] = field(default_factory=dict)


@dataclass
class DataSection:
    sources: list[SourceSpec] = field(default_factory=list)  # train/val records come from their `split`
    image_size: int = 224  # S; must match the model's image_size
    batch_size: int = 32  # per process (per GPU under DDP)
    num_workers: int = 4  # DataLoader worker processes per training process
    crop_scale: tuple[float, float] = (0.2, 1.0)  # RandomResizedCrop area range (released value)
    randaug_ops: int = 2  # RandAugment ops per image (released N)
    randaug_magnitude: float = 7.0  # RandAugment magnitude out of 10 (released M)
    augment: bool = True  # False: training images get the eval letterbox (overfitting tests)
    frontal_only: bool = True  # drop lateral views (covid-chestxray "L")


@dataclass
class OptimSection:
    lr: float = 1e-4  # AdamW peak learning rate (released)
    weight_decay: float = 0.02  # AdamW decoupled weight decay (released); never on norms/biases/embeddings
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    trunk_lr_scale: float = 1.0  # the image trunk's peak lr as a multiple of lr (1 = one rate for all)


@dataclass
class ScheduleSection:
    epochs: int = 100  # passes over the training records
    warmup_steps: int = 0  # linear warm-up from 0 to lr over this many optimizer steps
    warmup_epochs: float = 0.0  # warm-up length in epochs, converted to steps (used when warmup_steps is 0)
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    total_steps: int = 0  # length of the cosine schedule (0 = epochs * steps per epoch)


@dataclass
class RunSection:
    out_dir: str = "runs/medslip"  # checkpoints and logs go here (rank 0 only)
    seed: int = 42  # python / numpy / torch / sampler / augmentation seed
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1"
    amp: AmpMode = "none"  # autocast dtype on GPU ("bf16" or "fp16" + GradScaler); "none" = fp32
    amp_on_cpu: bool = False  # allow bf16 autocast on CPU as well (fp16 is never used on CPU)
    channels_last: bool = False  # NHWC memory format for the conv trunk
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)
    checkpoint_every: int = 1000  # optimizer steps between checkpoints (0 = only at the end)
    val_every: int = 1000  # optimizer steps between validations (0 = only at the end of each epoch)
    log_every: int = 10  # optimizer steps between log lines of every loss term
    max_steps: int = 0  # stop after this many optimizer steps (0 = run the whole schedule)
    progress: bool = True  # tqdm bar (also off when stderr is not a TTY)
    find_unused_parameters: bool = False  # DDP: needed when some heads get no gradient
    ema_decays: list[float] = field(default_factory=list)  # EMAs of the weights, e.g. [0.998] ([]: none)


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossConfig = field(default_factory=LossConfig)  # pretraining loss weights / temperature
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    run: RunSection = field(default_factory=RunSection)
    task: dict[str, Any] = field(default_factory=dict)  # fine-tuning task fields (labels, structures, ...)
    objectives: list[ObjectiveSpec] = field(default_factory=list)  # extra pretraining terms ([]: MeDSLIP)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys (`optim.lr=3e-4`, `data.sources.0.max_records=8`) in a nested mapping.

    Values are YAML-parsed; a numeric part indexes into a list.
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        node: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
            else:
                raise ConfigError(f"override {key!r}: {part!r} is not a section or list index")
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = _parse_value(raw)
        elif isinstance(node, dict):
            node[last] = _parse_value(raw)
        else:
            raise ConfigError(f"override {key!r}: cannot set {last!r}")
    return data


def _parse_value(raw: str) -> Any:
    """YAML scalar, except that `1e-3` is a float (YAML 1.1 reads exponents without a dot as strings)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file + overrides -> TrainConfig."""
    data = apply_overrides(read_mapping(path), overrides or [])
    try:
        return config_from_dict(TrainConfig, data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
