"""RSNA Pneumonia Detection Challenge (Kaggle, 2018) in its official layout.

`stage_2_train_labels.csv`: `patientId,x,y,width,height,Target`, one row per box (Target 1) or one row
with empty coordinates (Target 0); boxes are in the pixels of the 1024 x 1024 DICOMs in
`stage_2_train_images/<patientId>.dcm`. Only the stage-2 TRAIN images have labels, so every paper splits
them itself. Split files, when present, are read from `splits/` (`train|val|valid|test` `.csv`/`.txt`, a
`patientId` or image-path column: e.g. the MedKLIP/MeDSLIP sample CSVs); without them a deterministic
patient-level 70/10/20 split by SHA-256 of `patientId` is used, and the report says it is not the
papers' split.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from training.data.manifest import Box, ManifestRecord
from training.protocols.datasets import (
    BenchmarkData,
    DatasetLayoutError,
    count_skip,
    index_images,
    read_split_files,
    three_way_split,
)

logger = logging.getLogger(__name__)

NAME = "rsna"
CLASS = "Pneumonia"
CLASSES: tuple[str, ...] = (CLASS,)
LABELS_FILE = "stage_2_train_labels.csv"
IMAGE_DIRS = ("stage_2_train_images", "stage_1_train_images")
SPLIT_DIR = "splits"


def read_labels(path: Path) -> dict[str, tuple[int, list[tuple[float, float, float, float]]]]:
    """{patientId: (target 0/1, [(x, y, w, h)])}; several rows of one patient are merged."""
    out: dict[str, tuple[int, list[tuple[float, float, float, float]]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            pid = row["patientId"].strip()
            target = int(row["Target"])
            previous, boxes = out.get(pid, (0, []))
            if target == 1:
                if not row["x"].strip():
                    raise DatasetLayoutError("a Target 1 row without a box")
                boxes = [*boxes, tuple(float(row[k]) for k in ("x", "y", "width", "height"))]  # type: ignore[list-item]
            out[pid] = (max(previous, target), boxes)
    return out


def read_rsna(root: Path) -> BenchmarkData:
    """One record per patient (one film each) whose DICOM is on disk."""
    if not (root / LABELS_FILE).is_file():
        raise DatasetLayoutError(f"{LABELS_FILE} not in the RSNA folder")
    labels = read_labels(root / LABELS_FILE)
    images = index_images([root / name for name in IMAGE_DIRS], (".dcm", ".png", ".jpg"))
    official_split = read_split_files(root / SPLIT_DIR)
    records: list[ManifestRecord] = []
    skipped: dict[str, int] = {}
    for pid, (target, boxes) in labels.items():
        path = images.get(pid)
        if path is None:
            count_skip(skipped, "image file not found")
            continue
        if official_split is not None:
            split = official_split.get(pid)
            if split is None:
                count_skip(skipped, "not in the split files")
                continue
        else:
            split = three_way_split(pid)
        records.append(ManifestRecord(
            image=str(path.absolute()), split=split, source=NAME, labels={CLASS: target},
            boxes=[Box(CLASS, *box) for box in boxes],
        ))
    note = (f"split files in {SPLIT_DIR}/" if official_split is not None else
            "no split files: patient-level 70/10/20 by SHA-256 of patientId (NOT the papers' split)")
    data = BenchmarkData(name=NAME, records=records, classes=CLASSES, layout=f"official ({LABELS_FILE})",
                         split_note=note, skipped=skipped)
    logger.info("rsna: %s", data.counts())
    return data
