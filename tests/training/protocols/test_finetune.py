"""Data-efficient fine-tuning end to end at tiny scale on the CPU: COVIDx classification and SIIM-ACR
segmentation through medslip-finetune-cls / -seg, on real films, then scored on the test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.training.protocol_trees import rectangle_rle
from tests.support.training.tiny_models import tiny_model
from training.model import load_checkpoint, save_checkpoint
from training.protocols.cli import main
from training.protocols.finetune import subsample
from training.protocols.siim import decode_masks, read_siim

RECIPE = ["run.device=cpu", "run.threads=1", "run.progress=false", "data.num_workers=0", "data.batch_size=2",
          "data.augment=false", "schedule.epochs=1", "schedule.total_steps=2", "schedule.warmup_steps=1",
          "run.val_every=1000", "run.log_every=1"]


def _covidx(shared: Path, root: Path) -> None:
    with (shared / "covid-chestxray" / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["view"] in {"PA", "AP"}]
    positives = [r for r in rows if r["finding"] == "COVID-19"][:3]
    negatives = [r for r in rows if r["finding"] == "No Finding"][:3]
    for split, pair in zip(("train", "val", "test"), zip(positives, negatives, strict=True), strict=True):
        (root / split).mkdir(parents=True)
        lines = []
        for row, label in zip(pair, ("positive", "negative"), strict=True):
            source = shared / "covid-chestxray" / row["image"]
            (root / split / source.name).symlink_to(source)
            lines.append(f"{row['patient_id']} {source.name} {label} ieee8023")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _siim(shared: Path, root: Path) -> None:
    """Two films with pneumothorax (train, test) and two without (train, val), around real DICOMs."""
    series = root / "dicom-images-train" / "s" / "t"
    series.mkdir(parents=True)
    films = {"9.1": "siim_chest_jpeg_baseline.dcm", "9.2": "nih_gcp_DX_nofinding.dcm",
             "9.5": "siim_chest_jpeg_baseline.dcm", "9.6": "nih_gcp_DX_nofinding.dcm"}
    for image_id, name in films.items():
        (series / f"{image_id}.dcm").symlink_to(shared / "dicom" / name)
    rle = rectangle_rle(range(300, 500), range(600, 800), 1024)
    (root / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n9.1, {rle}\n9.2, -1\n9.5, {rle}\n9.6, -1\n",
                                        encoding="utf-8")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("9.1\n9.2\n", encoding="utf-8")
    (root / "splits" / "val.txt").write_text("9.6\n", encoding="utf-8")
    (root / "splits" / "test.txt").write_text("9.5\n", encoding="utf-8")


def test_subsets_are_seeded_nested_in_size_and_never_empty() -> None:
    items = list(range(200))
    assert subsample(items, 0.01, 1) == subsample(items, 0.01, 1)  # type: ignore[arg-type]
    assert len(subsample(items, 0.01, 1)) == 2 and len(subsample(items, 0.1, 1)) == 20  # type: ignore[arg-type]
    assert subsample(items, 0.01, 1) != subsample(items, 0.01, 2)  # type: ignore[arg-type]
    assert subsample(items[:5], 0.01, 1) and subsample(items, 1.0, 3) == items  # type: ignore[arg-type]


@pytest.mark.shared_data
def test_fractions_run_the_trainer_and_score_the_test_split(shared_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    root = tmp_path / "data"
    _covidx(shared_data, root / "covidx")
    _siim(shared_data, root / "siim")
    init = tmp_path / "init.pt"
    save_checkpoint(init, tiny_model())
    out = tmp_path / "out"
    argv = ["--data-root", str(root), "--checkpoint", str(init), "--out", str(out), "--tasks", "finetune",
            "--fractions", "0.5,1", "--seeds", "7", "--no-progress", "--workers", "1"]
    for item in RECIPE:
        argv += ["--finetune-override", item]
    argv += ["--finetune-seg-override", "task.decoder_channels=[16, 8, 8, 8]"]
    assert main(argv) == 0
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    covidx = report["finetune"]["covidx"]["classification"]["fractions"]
    assert [covidx[k]["n_train"] for k in ("50%", "100%")] == [1, 2]
    assert all(0.0 <= covidx[k]["auroc"] <= 1.0 for k in covidx)  # both classes on test: AUROC defined
    segmentation = report["finetune"]["siim"]["segmentation"]["fractions"]
    assert all(0.0 <= segmentation[k]["dice"] <= 1.0 for k in ("50%", "100%"))
    run = out / "finetune" / "siim" / "segmentation" / "100%_seed7"
    model, extra = load_checkpoint(run / "segmentation_final.pt")
    assert extra["segmentation"]["structures"] == ["pneumothorax"] and model.config.image_size == 64
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [s["step"] for s in steps if s["split"] == "train"] == [1, 2]
    data = read_siim(root / "siim")
    masks = sorted((out / "finetune" / "siim" / "segmentation" / "masks").glob("*.png"))
    assert len(masks) == 3  # train 2 + val 1 (test masks stay RLE)
    written = [np.asarray(Image.open(path)) > 0 for path in masks]
    image = next(r.image for r in data.records if r.image.endswith("9.1.dcm"))
    positive = decode_masks(data.rle_masks[image], (1024, 1024))
    assert any(np.array_equal(mask, positive) for mask in written)
    assert "| COVIDx CXR-4 | classification | auroc |" in (out / "benchmark.md").read_text(encoding="utf-8")
