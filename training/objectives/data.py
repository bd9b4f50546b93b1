"""Pretraining samples with what the extra objectives read: report text entries and region boxes.

Same images, augmentation and report labels as `PretrainDataset` (it is one); each sample also carries
its report's cached text entries (`ReportBank.item`) and, when region-sentence alignment is on, the
boxes of the anatomical regions after augmentation (their masks are transformed with the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.data.dataset import (
    PairTransform,
    PretrainDataset,
    Sample,
    _segmentation_sample,
    load_pixels,
    mask_targets,
)
from training.data.manifest import ManifestRecord
from training.objectives.regions import REGIONS, mask_boxes, region_masks
from training.objectives.text_bank import ReportBank


class ObjectivePretrainDataset(PretrainDataset):
    """`PretrainDataset` + `ReportBank.item` entries + (with `regions`) `region_boxes` (R, 4) in pixels
    of the S x S image and `region_valid` (R,): the region is visible after augmentation."""

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        transform: PairTransform,
        seed: int = 0,
        structures: Sequence[str] | None = None,
        *,
        bank: ReportBank,
        regions: bool,
    ) -> None:
        super().__init__(records, transform, seed, structures)
        self.bank = bank
        self.regions = regions
        self._rows = [bank.index_of(record.report or "") for record in self.records]

    def _needs_regions(self, record: ManifestRecord, row: int) -> bool:
        """Regions are worth building only for a record with masks or boxes whose report names one."""
        return self.regions and bool(record.masks or record.boxes) and bool(self.bank.links[row].any())

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        row = self._rows[index]
        pixels = load_pixels(record.image)
        sample = {**self.label_entries(index), **self.bank.item(row)}
        layers: list[np.ndarray] = []
        seg_valid: list[bool] = []
        if self.structures is not None:
            stacked, seg_valid = mask_targets(record, pixels, self.structures)  # (K + 1, H, W)
            layers.append(stacked)
        with_regions = self._needs_regions(record, row)
        region_valid = np.zeros(len(REGIONS), dtype=bool)
        if with_regions:
            regions, region_valid = region_masks(record, pixels.shape)  # (R, H, W), (R,)
            layers.append(regions)
        sample["image"], masks = self._transform(index, pixels, np.concatenate(layers) if layers else None)
        if self.structures is not None:
            if masks is None:
                raise RuntimeError("the transform dropped the masks it was given")
            sample.update(_segmentation_sample(masks[: len(seg_valid)], seg_valid))
        if self.regions:
            boxes = np.zeros((len(REGIONS), 4), dtype=np.float32)
            visible = np.zeros(len(REGIONS), dtype=bool)
            if with_regions and masks is not None:
                boxes, visible = mask_boxes(masks[len(seg_valid) :])
                visible &= region_valid
            sample["region_boxes"] = torch.from_numpy(boxes)  # (R, 4) x0, y0, x1, y1
            sample["region_valid"] = torch.from_numpy(visible)  # (R,)
        return sample
