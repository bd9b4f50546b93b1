"""SIIM-ACR Pneumothorax Segmentation (Kaggle, 2019) in its official layout, and its RLE masks.

`train-rle.csv`: `ImageId, EncodedPixels` (note the space), one row per pneumothorax region, `-1` for a
film without one; DICOMs at `dicom-images-train/<study>/<series>/<ImageId>.dcm` (1024 x 1024). The RLE
is the challenge's RELATIVE form over the COLUMN-major (transposed) pixel order: pairs
(gap since the end of the previous run, run length); `mask_functions.rle2mask(rle, w, h).T` in the
challenge kit. Split files as for RSNA (`splits/`), else a patient-free 70/10/20 split by SHA-256 of
ImageId (the set has one film per patient).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.manifest import ManifestRecord
from training.protocols.datasets import (
    BenchmarkData,
    DatasetLayoutError,
    count_skip,
    index_images,
    read_split_files,
    three_way_split,
)

logger = logging.getLogger(__name__)

NAME = "siim"
CLASS = "Pneumothorax"
CLASSES: tuple[str, ...] = (CLASS,)
RLE_FILES = ("train-rle.csv", "stage_2_train.csv")
IMAGE_DIRS = ("dicom-images-train", "stage_2_images", "dicom-images-test")
SPLIT_DIR = "splits"
NO_MASK = "-1"


def decode_rle(rle: str, height: int, width: int) -> NDArray[np.bool_]:
    """Relative column-major RLE -> boolean (height, width) mask; `-1` or "" -> empty mask."""
    flat = np.zeros(height * width, dtype=bool)  # column-major positions
    values = rle.split()
    if not values or values == [NO_MASK]:
        return flat.reshape(width, height).T
    if len(values) % 2:
        raise DatasetLayoutError("RLE has an odd number of values")
    numbers = np.asarray(values, dtype=np.int64)
    position = 0
    for gap, length in zip(numbers[0::2], numbers[1::2], strict=True):
        position += int(gap)
        if position + int(length) > flat.size:
            raise DatasetLayoutError("RLE runs past the end of the image")
        flat[position:position + int(length)] = True
        position += int(length)
    return flat.reshape(width, height).T  # row r of the transposed grid is column r of the image


def decode_masks(rles: tuple[str, ...], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Union of every region of one film at (H, W)."""
    mask = np.zeros(shape, dtype=bool)
    for rle in rles:
        mask |= decode_rle(rle, *shape)
    return mask


def read_rle(path: Path) -> dict[str, tuple[str, ...]]:
    """{ImageId: (RLE per region,)}; an empty tuple for a film without pneumothorax."""
    out: dict[str, tuple[str, ...]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # ImageId, EncodedPixels
        for row in reader:
            if len(row) < 2 or not row[0].strip():
                continue
            image_id, rle = row[0].strip(), row[1].strip()
            regions = out.get(image_id, ())
            out[image_id] = regions if rle == NO_MASK else (*regions, rle)
    return out


def read_siim(root: Path) -> BenchmarkData:
    """One record per film whose DICOM is on disk; masks stay RLE until a protocol needs them."""
    rle_file = next((root / name for name in RLE_FILES if (root / name).is_file()), None)
    if rle_file is None:
        raise DatasetLayoutError(f"none of {RLE_FILES} in the SIIM folder")
    regions = read_rle(rle_file)
    images = index_images([root / name for name in IMAGE_DIRS], (".dcm", ".png", ".jpg"))
    official_split = read_split_files(root / SPLIT_DIR)
    records: list[ManifestRecord] = []
    rle_masks: dict[str, tuple[str, ...]] = {}
    skipped: dict[str, int] = {}
    for image_id, rles in regions.items():
        path = images.get(image_id)
        if path is None:
            count_skip(skipped, "image file not found")
            continue
        split = official_split.get(image_id) if official_split is not None else three_way_split(image_id)
        if split is None:
            count_skip(skipped, "not in the split files")
            continue
        image = str(path.absolute())
        records.append(ManifestRecord(image=image, split=split, source=NAME, labels={CLASS: int(bool(rles))}))
        rle_masks[image] = rles
    note = (f"split files in {SPLIT_DIR}/" if official_split is not None else
            "no split files: 70/10/20 by SHA-256 of ImageId (NOT the papers' split)")
    data = BenchmarkData(name=NAME, records=records, classes=CLASSES, layout=f"official ({rle_file.name})",
                         split_note=note, rle_masks=rle_masks, skipped=skipped)
    logger.info("siim: %s", data.counts())
    return data
