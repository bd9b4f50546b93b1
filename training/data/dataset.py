"""Datasets over manifest records: pretraining (report labels), classification, segmentation.

Images are decoded with `app.contract.imaging.decode_path`, the service's own decoder, so training never
sees a pixel path the service would not. Report labels are parsed once per distinct report text when the
dataset is built (reports repeat: kermany templates, multi-image studies) and kept as int8 arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from app.contract.imaging import decode_path
from training.data.manifest import ManifestRecord
from training.data.sources.covid import LUNGS_MASK
from training.reports import parse_report

logger = logging.getLogger(__name__)

Sample = dict[str, torch.Tensor]


class PairTransform(Protocol):
    """What TrainTransform and EvalTransform share: (H, W) [0,1] (+ masks) -> (3, S, S) (+ masks)."""

    def set_random_state(self, seed: int | Sequence[int]) -> None: ...

    def __call__(
        self, image: np.ndarray, masks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


def load_pixels(path: str) -> np.ndarray:
    """(H, W) float32 in [0, 1] through the service's decoder (laterals allowed: the reader filters);
    the transforms (`transforms_from_spec`) then preprocess it as the exported bundle declares."""
    return decode_path(path, allow_lateral=True).pixels


def load_mask(path: str) -> np.ndarray:
    """(H, W) float32 0/1 from a binary mask image."""
    return (decode_path(path, allow_lateral=True).pixels >= 0.5).astype(np.float32)


class RecordDataset(Dataset[Sample]):
    """Shared part: records, transform, and per-sample seeding from (seed, epoch, index)."""

    def __init__(self, records: Sequence[ManifestRecord], transform: PairTransform, seed: int = 0) -> None:
        if not records:
            raise ValueError("dataset built from zero manifest records")
        self.records = list(records)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws each epoch while staying reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _transform(
        self, index: int, image: np.ndarray, masks: np.ndarray | None = None
    ) -> tuple[torch.Tensor, np.ndarray | None]:
        self.transform.set_random_state((self.seed, self.epoch, index))
        pixels, out_masks = self.transform(image, masks)
        return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)), out_masks


class PretrainDataset(RecordDataset):
    """Image + report labels: `matrix` (51, 75), `pathology_labels` (75,), `anatomy_labels` (51,).

    With `structures`, every sample also carries the segmentation targets of `mask_targets` (zeros and
    `mask_valid` 0 where a record has no masks), so pretraining can train a segmentation head on the same
    trunk and batch (joint pretraining: one trunk serves classification, grounding and masks).
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        transform: PairTransform,
        seed: int = 0,
        structures: Sequence[str] | None = None,
    ) -> None:
        kept = [record for record in records if record.report]
        if len(kept) < len(records):
            logger.info("pretraining drops %d records without report text", len(records) - len(kept))
        super().__init__(kept, transform, seed)
        self.structures = list(structures) if structures else None
        parsed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for record in self.records:
            text = record.report or ""
            if text not in parsed:
                labels = parse_report(text)
                parsed[text] = (labels.matrix, labels.pathology, labels.anatomy)
        self._labels = [parsed[record.report or ""] for record in self.records]
        logger.info("parsed %d distinct reports for %d images", len(parsed), len(self.records))

    def label_entries(self, index: int) -> Sample:
        """The report-label entries of sample `index` (shared by subclasses that add their own)."""
        matrix, pathology, anatomy = self._labels[index]
        return {
            "matrix": torch.from_numpy(matrix.astype(np.int64)),  # (51, 75)
            "pathology_labels": torch.from_numpy(pathology.astype(np.int64)),  # (75,)
            "anatomy_labels": torch.from_numpy(anatomy.astype(np.int64)),  # (51,)
        }

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        pixels = load_pixels(record.image)
        sample = self.label_entries(index)
        if self.structures is None:
            sample["image"], _ = self._transform(index, pixels)  # (3, S, S)
            return sample
        stacked, valid = mask_targets(record, pixels, self.structures)
        sample["image"], masks = self._transform(index, pixels, stacked)
        return {**sample, **_segmentation_sample(masks, valid)}


class ClassificationDataset(RecordDataset):
    """Image + `labels` (L,) float 0/1 and `label_mask` (L,) 1 where the record has that label."""

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        label_names: Sequence[str],
        transform: PairTransform,
        seed: int = 0,
    ) -> None:
        kept = [record for record in records if record.labels and set(label_names) & set(record.labels)]
        super().__init__(kept, transform, seed)
        self.label_names = list(label_names)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        image, _ = self._transform(index, load_pixels(record.image))
        known = record.labels or {}
        labels = [float(known.get(name, 0)) for name in self.label_names]
        mask = [float(name in known) for name in self.label_names]
        return {"image": image, "labels": torch.tensor(labels), "label_mask": torch.tensor(mask)}  # (L,)


def split_lungs(union: np.ndarray, min_share: float = 0.25) -> tuple[np.ndarray, np.ndarray] | None:
    """(right_lung, left_lung) from a both-lungs mask (H, W) that is two separate blobs, else None.

    Refuses anything ambiguous: more or fewer than two large blobs, a blob under `min_share` of the
    union, or blobs whose horizontal extents overlap.
    """
    from scipy import ndimage  # noqa: PLC0415  (heavy import, only for segmentation data)

    binary = union > 0.5  # (H, W)
    labelled, count = ndimage.label(binary)
    if count < 2:
        return None
    areas = np.bincount(labelled.ravel())[1:]  # (count,)
    order = np.argsort(areas)[::-1]
    if areas[order[:2]].min() < min_share * binary.sum() or (
        count > 2 and areas[order[2]] > 0.02 * binary.sum()
    ):
        return None
    blobs = [labelled == index + 1 for index in order[:2]]  # two (H, W) masks
    extents = [np.nonzero(blob.any(axis=0))[0] for blob in blobs]
    image_left, image_right = sorted(range(2), key=lambda i: extents[i].mean())
    if extents[image_left].max() >= extents[image_right].min():
        return None
    # Radiological convention: the patient's right lung is on the image's left.
    return blobs[image_left].astype(union.dtype), blobs[image_right].astype(union.dtype)


class SegmentationDataset(RecordDataset):
    """Image + per-structure masks; structures a record lacks get `mask_valid` 0 (no loss there).

    `lungs` is the union-of-lungs target: from the record's own `lungs` mask (covid-chestxray ships one
    mask for both lungs) or the union of its left/right masks. A union mask made of exactly two large
    blobs side by side is also split into the two lungs (`split_lungs`): the blob on the image's left is
    the patient's right lung. A cut down the image midline would be wrong (the mediastinum is rarely
    centred); separate blobs are not, and they give the per-side channels adult digital films that JSRT's
    digitised films alone do not.
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        structures: Sequence[str],
        transform: PairTransform,
        seed: int = 0,
    ) -> None:
        kept = [record for record in records if record.masks]
        super().__init__(kept, transform, seed)
        self.structures = list(structures)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        pixels = load_pixels(record.image)
        stacked, valid = mask_targets(record, pixels, self.structures)
        image, masks = self._transform(index, pixels, stacked)
        return {"image": image, **_segmentation_sample(masks, valid)}



def mask_targets(
    record: ManifestRecord, pixels: np.ndarray, structures: Sequence[str]
) -> tuple[np.ndarray, list[bool]]:
    """(K + 1, H, W) masks of `structures` then the lungs union, and which of them the record has.

    `lungs` is the union-of-lungs target: from the record's own `lungs` mask (covid-chestxray ships one
    mask for both lungs) or the union of its left/right masks. A union mask made of exactly two large
    blobs side by side is also split into the two lungs (`split_lungs`): the blob on the image's left is
    the patient's right lung.
    """
    available = record.masks or {}
    names = [*structures, LUNGS_MASK]
    stacked = np.stack(
        [load_mask(available[name]) if name in available else np.zeros_like(pixels) for name in names]
    )  # (K + 1, H, W)
    valid = [name in available for name in names]
    if "right_lung" in names and "left_lung" in names:
        right, left = names.index("right_lung"), names.index("left_lung")
        if valid[-1] and not valid[right] and not valid[left]:
            sides = split_lungs(stacked[-1])
            if sides is not None:
                stacked[right], stacked[left] = sides
                valid[right] = valid[left] = True
        if not valid[-1] and valid[right] and valid[left]:
            stacked[-1] = np.maximum(stacked[right], stacked[left])
            valid[-1] = True
    return stacked, valid


def _segmentation_sample(masks: np.ndarray | None, valid: list[bool]) -> Sample:
    """Transformed (K + 1, S, S) masks + validity -> the segmentation entries of a sample."""
    if masks is None:
        raise RuntimeError("the transform dropped the masks it was given")
    return {
        "masks": torch.from_numpy(np.ascontiguousarray(masks[:-1])),  # (K, S, S)
        "mask_valid": torch.tensor(valid[:-1], dtype=torch.float32),  # (K,)
        "lungs": torch.from_numpy(np.ascontiguousarray(masks[-1])),  # (S, S)
        "lungs_valid": torch.tensor(float(valid[-1])),  # ()
    }
