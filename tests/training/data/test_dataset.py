"""Datasets on real records: label tensors, mask validity, per-sample determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.contract.imaging import PreprocessingSpec
from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.data.augment import EvalTransform, TrainTransform
from training.data.dataset import ClassificationDataset, PretrainDataset, SegmentationDataset, split_lungs
from training.data.sources import JSRT_STRUCTURES, read_covid_chestxray, read_jsrt_scr, read_kermany_pediatric

SPEC = PreprocessingSpec.trained(64)  # what training builds its transforms from (washed-out stretch on)


@pytest.mark.shared_data
def test_pretrain_sample_has_report_labels(shared_data: Path) -> None:
    records = read_kermany_pediatric(shared_data / "kermany-pediatric")[:3]
    dataset = PretrainDataset(records, EvalTransform(SPEC))
    sample = dataset[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["matrix"].shape == (len(ANATOMY), len(PATHOLOGY))
    assert sample["pathology_labels"].shape == (len(PATHOLOGY),)
    assert sample["anatomy_labels"].shape == (len(ANATOMY),)
    assert set(sample["matrix"].unique().tolist()) <= {-1, 0, 1}
    assert (sample["pathology_labels"] != -1).any(), "a template report must mention something"


@pytest.mark.shared_data
def test_pretrain_drops_records_without_text(shared_data: Path) -> None:
    records = read_covid_chestxray(shared_data / "covid-chestxray", frontal_only=True)[:40]
    dataset = PretrainDataset(records, EvalTransform(SPEC))
    assert len(dataset) == sum(r.report is not None for r in records) < len(records)


@pytest.mark.shared_data
def test_same_index_epoch_and_seed_give_the_same_augmented_image(shared_data: Path) -> None:
    records = read_kermany_pediatric(shared_data / "kermany-pediatric")[:2]
    dataset = PretrainDataset(records, TrainTransform(SPEC), seed=7)
    first = dataset[1]["image"]
    dataset[0]  # other draws in between must not matter
    assert torch.equal(dataset[1]["image"], first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["image"], first)


@pytest.mark.shared_data
def test_classification_labels_and_mask(shared_data: Path) -> None:
    records = read_kermany_pediatric(shared_data / "kermany-pediatric")[:4]
    dataset = ClassificationDataset(records, ["pneumonia", "nodule"], EvalTransform(SPEC))
    sample = dataset[0]
    assert sample["label_mask"].tolist() == [1.0, 0.0]
    assert sample["labels"][0].item() == records[0].labels["pneumonia"]  # type: ignore[index]


@pytest.mark.shared_data
def test_segmentation_masks_and_validity(shared_data: Path) -> None:
    jsrt = SegmentationDataset(
        read_jsrt_scr(shared_data / "jsrt-scr")[:1],
        list(JSRT_STRUCTURES),
        TrainTransform(SPEC, crop_scale=(0.8, 1.0)),
    )
    sample = jsrt[0]
    assert sample["masks"].shape == (5, 64, 64) and sample["mask_valid"].tolist() == [1.0] * 5
    assert sample["lungs_valid"].item() == 1.0
    assert torch.equal(sample["lungs"], torch.maximum(sample["masks"][0], sample["masks"][1]))
    right_cols = sample["masks"][0].nonzero()[:, 1].float().mean()
    left_cols = sample["masks"][1].nonzero()[:, 1].float().mean()
    assert right_cols < left_cols, "patient's right lung is on the image's left"
    covid_records = [r for r in read_covid_chestxray(shared_data / "covid-chestxray") if r.masks][:1]
    covid = SegmentationDataset(covid_records, list(JSRT_STRUCTURES), EvalTransform(SPEC))[0]
    # Its single both-lungs mask is two separate blobs: split into the lung channels; no heart/clavicles.
    assert covid["mask_valid"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0] and covid["lungs_valid"].item() == 1.0
    assert torch.equal(torch.maximum(covid["masks"][0], covid["masks"][1]), covid["lungs"])
    assert covid["masks"][2:].sum() == 0


def test_split_lungs_assigns_image_left_blob_to_the_patients_right_lung() -> None:

    union = np.zeros((40, 60), dtype=np.float32)
    union[5:35, 5:25] = 1.0  # image left: patient's right lung
    union[8:30, 35:55] = 1.0  # image right: patient's left lung
    sides = split_lungs(union)
    assert sides is not None
    right, left = sides
    assert right[:, :30].sum() == right.sum() > 0 and left[:, 30:].sum() == left.sum() > 0
    assert np.array_equal(np.maximum(right, left), union)


def test_split_lungs_refuses_ambiguous_masks() -> None:

    one_blob = np.zeros((40, 60), dtype=np.float32)
    one_blob[5:35, 5:55] = 1.0
    assert split_lungs(one_blob) is None
    tiny_second = one_blob.copy()
    tiny_second[:, 25:27] = 0.0
    tiny_second[:, 27:] = 0.0
    tiny_second[20:22, 40:42] = 1.0  # a speck, not a lung
    assert split_lungs(tiny_second) is None
    stacked = np.zeros((40, 60), dtype=np.float32)
    stacked[2:15, 5:50] = 1.0
    stacked[25:38, 10:55] = 1.0  # one above the other: no left/right reading
    assert split_lungs(stacked) is None
