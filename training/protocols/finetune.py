"""Data-efficient fine-tuning: 1 %, 10 % and 100 % of a benchmark's training labels, fixed seeds.

Recipe (the project's fine-tuning commands, nothing re-implemented): for each fraction and seed, a
seeded random subset of the training split is written as a JSONL manifest beside the full validation
split, and `medslip-finetune-cls` (classification: the existence head queried with each class's entity,
every parameter tuned; base config `training/configs/finetune_cls_kermany.yaml`) or
`medslip-finetune-seg` (SIIM-ACR pneumothorax masks, one output channel, trunk NOT frozen; base config
`training/configs/finetune_seg_jsrt.yaml`) runs on it with the overrides below, in this process or under
`torchrun --nproc-per-node N` (`--nproc N`). The fine-tuned checkpoint is then scored on the test split:
classification through the same streamed zero-shot protocol (AUROC, F1, ACC), segmentation by Dice of
the mask at probability >= 0.5 on the test films that have pneumothorax.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.contract.imaging import decode_path
from app.contract.imaging.preprocessing import PreprocessingSpec
from training.data.manifest import ManifestRecord, write_manifest
from training.evaluation.predictors import TorchPredictor
from training.export.graph import ImageModelGraph
from training.metrics import dice
from training.model import SegmentationModel, load_checkpoint
from training.model.grounding import default_grounding
from training.protocols.datasets import BenchmarkData
from training.protocols.prompts import QueryPlan, entity_mapping
from training.protocols.siim import decode_masks
from training.protocols.stream import StreamSettings, record_key
from training.protocols.zeroshot import classification_section, score_dataset
from training.tasks import finetune_cls, finetune_seg
from training.trainer.config import load_config

logger = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLS_CONFIG = CONFIGS / "finetune_cls_kermany.yaml"
SEG_CONFIG = CONFIGS / "finetune_seg_jsrt.yaml"
FRACTIONS: tuple[float, ...] = (0.01, 0.1, 1.0)
SEGMENTATION_STRUCTURE = "pneumothorax"


@dataclass(frozen=True)
class FinetuneSettings:
    fractions: tuple[float, ...] = FRACTIONS
    seeds: tuple[int, ...] = (42,)
    nproc: int = 1  # > 1: torchrun --standalone --nproc-per-node N
    overrides: tuple[str, ...] = ()  # KEY=VALUE for both commands (e.g. schedule.epochs=10)
    cls_overrides: tuple[str, ...] = ()  # KEY=VALUE for classification only
    seg_overrides: tuple[str, ...] = ()  # KEY=VALUE for segmentation only (e.g. task.decoder_channels)
    cls_config: Path = CLS_CONFIG
    seg_config: Path = SEG_CONFIG

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("fine-tuning (needs --checkpoint)")
        group.add_argument("--fractions", default="0.01,0.1,1.0", help="fractions of the training labels")
        group.add_argument("--seeds", default="42", help="comma list; figures are means over seeds")
        group.add_argument("--nproc", type=int, default=1, help="processes per run (torchrun when > 1)")
        group.add_argument("--finetune-override", action="append", default=[], metavar="KEY=VALUE",
                           help="config override for every fine-tuning run (repeatable)")
        group.add_argument("--finetune-cls-override", action="append", default=[], metavar="KEY=VALUE",
                           help="config override for the classification runs only (repeatable)")
        group.add_argument("--finetune-seg-override", action="append", default=[], metavar="KEY=VALUE",
                           help="config override for the segmentation runs only (repeatable)")
        group.add_argument("--finetune-cls-config", type=Path, default=CLS_CONFIG)
        group.add_argument("--finetune-seg-config", type=Path, default=SEG_CONFIG)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FinetuneSettings:
        return cls(fractions=tuple(float(v) for v in str(args.fractions).split(",") if v.strip()),
                   seeds=tuple(int(v) for v in str(args.seeds).split(",") if v.strip()), nproc=args.nproc,
                   overrides=tuple(args.finetune_override), cls_overrides=tuple(args.finetune_cls_override),
                   seg_overrides=tuple(args.finetune_seg_override), cls_config=args.finetune_cls_config,
                   seg_config=args.finetune_seg_config)


def fraction_label(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def subsample(records: Sequence[ManifestRecord], fraction: float, seed: int) -> list[ManifestRecord]:
    """A seeded random ceil(fraction x n) of the records (at least one), in their original order."""
    count = max(1, math.ceil(fraction * len(records)))
    chosen = set(random.Random(seed).sample(range(len(records)), min(count, len(records))))
    return [record for index, record in enumerate(records) if index in chosen]


def _run_command(module: Any, argv: list[str], nproc: int) -> None:
    """The fine-tuning command in this process, or under torchrun (same argv, same entry point)."""
    if nproc <= 1:
        if module.main(argv) != 0:
            raise RuntimeError(f"{module.__name__} failed")
        return
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", module.__name__, *argv]
    subprocess.run(command, check=True)


def _argv(config: Path, init: Path, manifest: Path, out: Path, *, seed: int, image_size: int,
          task: Mapping[str, Any], overrides: Sequence[str]) -> list[str]:
    sets = {
        "data.sources": [{"kind": "manifest", "path": str(manifest)}],
        "data.image_size": image_size, "run.out_dir": str(out), "run.seed": seed, "run.progress": True,
        **{f"task.{key}": value for key, value in task.items()},
    }
    argv = ["--config", str(config), "--init", str(init)]
    for key, value in sets.items():
        argv += ["--override", f"{key}={json.dumps(value)}"]
    for item in overrides:
        argv += ["--override", item]
    return argv


def fit_batch(argv: list[str], n_train: int, nproc: int) -> list[str]:
    """argv with `data.batch_size` lowered to the films each process gets when a small fraction holds
    fewer than one batch (1 % of a small set); the report keeps n_train, the log says so."""
    config_path = Path(argv[argv.index("--config") + 1])
    overrides = [argv[i + 1] for i, item in enumerate(argv) if item == "--override"]
    batch = load_config(config_path, overrides).data.batch_size
    per_process = max(1, n_train // max(1, nproc))
    if batch <= per_process:
        return argv
    logger.info("batch size %d -> %d: only %d training films per process", batch, per_process, per_process)
    return [*argv, "--override", f"data.batch_size={per_process}"]


def _classification(args: argparse.Namespace, data: BenchmarkData, mapping: Mapping[str, str], *,
                    settings: FinetuneSettings, stream: StreamSettings, image_size: int) -> dict[str, Any]:
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    work = args.out / "finetune" / data.name / "classification"
    entities = entity_mapping(mapping, data.classes)
    task = {"labels": list(data.classes), "entities": entities}
    fractions: dict[str, Any] = {}
    for fraction in settings.fractions:
        runs = []
        for seed in settings.seeds:
            run_dir = work / f"{fraction_label(fraction)}_seed{seed}"
            final = run_dir / "checkpoint_final.pt"
            subset = subsample(train, fraction, seed)
            if not final.is_file():
                manifest = run_dir / "manifest.jsonl"
                write_manifest(subset + val, manifest)
                argv = _argv(settings.cls_config, args.checkpoint, manifest, run_dir, seed=seed,
                             image_size=image_size, task=task,
                             overrides=settings.overrides + settings.cls_overrides)
                _run_command(finetune_cls, fit_batch(argv, len(subset), settings.nproc), settings.nproc)
            model, _ = load_checkpoint(final)
            predictor = TorchPredictor(ImageModelGraph(model, None, default_grounding(False)), final,
                                       device=args.device)
            plan = QueryPlan(rows={c: predictor.info.pathology.index(entities[c]) for c in data.classes})
            test_only = replace(data, records=test + val, ground_all_splits=False)
            rows, _ = score_dataset(predictor, test_only, plan, partial_dir=run_dir, settings=stream)
            mean = classification_section(rows, data.classes)["mean"]
            runs.append({"seed": seed, "n_train": len(subset), "auroc": mean["auroc"],
                         "f1": mean["test_chosen"]["f1"], "acc": mean["test_chosen"]["acc"]})
        fractions[fraction_label(fraction)] = _mean_runs(runs)
    return {"task": "classification", "metric": "auroc", "fractions": fractions}


def _mean_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": list(runs), "n_train": runs[0]["n_train"]}
    for metric in ("auroc", "f1", "acc", "dice"):
        values = [run[metric] for run in runs if run.get(metric) is not None]
        if values:
            out[metric] = round(float(np.mean(values)), 6)
    return out


def _shape(path: str) -> tuple[int, int]:
    """(H, W) of a film from its header (DICOM Rows/Columns; PIL for PNG/JPEG)."""
    if path.lower().endswith(".dcm"):
        import pydicom  # noqa: PLC0415  (only SIIM's DICOMs need it)

        header = pydicom.dcmread(path, stop_before_pixels=True)
        return int(header.Rows), int(header.Columns)
    with Image.open(path) as image:
        return image.size[1], image.size[0]


def with_mask_files(data: BenchmarkData, records: Sequence[ManifestRecord],
                    folder: Path) -> list[ManifestRecord]:
    """Records whose RLE masks are written as PNG files (what the segmentation dataset reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for record in records:
        path = folder / f"{record_key(record)}.png"
        if not path.is_file():
            mask = decode_masks(data.rle_masks.get(record.image, ()), _shape(record.image))  # (H, W)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
        out.append(replace(record, masks={SEGMENTATION_STRUCTURE: str(path)}))
    return out


def segmentation_dice(checkpoint: Path, data: BenchmarkData,
                      records: Sequence[ManifestRecord]) -> float | None:
    """Mean Dice over test films with pneumothorax of the fine-tuned model's mask (p >= 0.5)."""
    base, extra = load_checkpoint(checkpoint)
    settings = extra["segmentation"]
    model = SegmentationModel(base.res_features, num_structures=len(settings["structures"]),
                              decoder_channels=tuple(settings["decoder_channels"])).eval()
    model.head.load_state_dict(extra["segmentation_head"])
    spec = PreprocessingSpec.trained(base.config.image_size)
    scores = []
    for record in records:
        rles = data.rle_masks.get(record.image, ())
        if not rles:
            continue
        pixels = decode_path(record.image).pixels  # (H, W)
        x, box, _ = spec.apply(pixels)  # (3, S, S)
        with torch.no_grad():
            logits = model(torch.from_numpy(x[None]))[0, 0].numpy()  # (S, S)
        probability = box.to_original(1.0 / (1.0 + np.exp(-logits)))  # (H, W)
        value = dice(probability >= 0.5, decode_masks(rles, pixels.shape))
        if not math.isnan(value):
            scores.append(value)
    return round(float(np.mean(scores)), 6) if scores else None


def _segmentation(args: argparse.Namespace, data: BenchmarkData, settings: FinetuneSettings,
                  image_size: int) -> dict[str, Any]:
    work = args.out / "finetune" / data.name / "segmentation"
    masks = work / "masks"
    val = with_mask_files(data, data.split("val"), masks)
    test = data.split("test")
    task = {"structures": [SEGMENTATION_STRUCTURE], "freeze_trunk": False}
    fractions: dict[str, Any] = {}
    for fraction in settings.fractions:
        runs = []
        for seed in settings.seeds:
            run_dir = work / f"{fraction_label(fraction)}_seed{seed}"
            final = run_dir / finetune_seg.SEGMENTATION_CHECKPOINT
            subset = subsample(data.split("train"), fraction, seed)
            if not final.is_file():
                manifest = run_dir / "manifest.jsonl"
                write_manifest(with_mask_files(data, subset, masks) + val, manifest)
                argv = _argv(settings.seg_config, args.checkpoint, manifest, run_dir, seed=seed,
                             image_size=image_size, task=task,
                             overrides=settings.overrides + settings.seg_overrides)
                _run_command(finetune_seg, fit_batch(argv, len(subset), settings.nproc), settings.nproc)
            runs.append({"seed": seed, "n_train": len(subset), "dice": segmentation_dice(final, data, test)})
        fractions[fraction_label(fraction)] = _mean_runs(runs)
    return {"task": "segmentation", "metric": "dice", "fractions": fractions}


def run_finetune(args: argparse.Namespace, data: BenchmarkData, mapping: Mapping[str, str],
                 stream: StreamSettings) -> dict[str, Any] | None:
    """The fine-tuning rows of one benchmark, or None (said in the log) when it has none or cannot."""
    if args.checkpoint is None:
        logger.warning("%s fine-tuning skipped: it needs --checkpoint (a bundle holds no trainable weights)",
                       data.name)
        return None
    if not data.classes or not data.split("train") or not data.split("test"):
        logger.warning("%s fine-tuning skipped: no classes, training or test films", data.name)
        return None
    settings = FinetuneSettings.from_args(args)
    init, _ = load_checkpoint(args.checkpoint)
    image_size = init.config.image_size
    result = {"classification": _classification(args, data, mapping, settings=settings, stream=stream,
                                                 image_size=image_size)}
    if data.rle_masks:
        result["segmentation"] = _segmentation(args, data, settings, image_size)
    return result
