"""MS-CXR (Boecking et al. 2022, PhysioNet): phrase-box pairs over MIMIC-CXR-JPG films.

`MS_CXR_Local_Alignment_v1.*.csv`: one row per (phrase, box): `dicom_id`, `category_name` (8 findings:
Atelectasis, Cardiomegaly, Consolidation, Edema, Lung Opacity, Pleural Effusion, Pneumonia,
Pneumothorax), `label_text` (the phrase), `path` (`files/p1x/p1xxxxxxx/sxxxxxxxx/<dicom_id>.jpg`, relative
to the MIMIC-CXR-JPG root), `x`, `y`, `w`, `h` in the pixels of a film of `image_width` x `image_height`,
and, from v1.1.0, `split`. Images are looked for under `<folder>/` then `<folder>/mimic-cxr-jpg/`; boxes
are rescaled when the file on disk has another size. Without a `split` column every film is test (the
set is for zero-shot grounding). Each box is grounded twice: through its CATEGORY's prompt
(`training.protocols.prompts`) and through its own phrase (`label_text`), encoded by the model's text
encoder as a free-text query (`BenchmarkData.phrases`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from training.data.manifest import Box, ManifestRecord
from training.protocols.datasets import BenchmarkData, DatasetLayoutError, count_skip, image_size, scaled_box

logger = logging.getLogger(__name__)

NAME = "mscxr"
CLASSES: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Opacity",
                            "Pleural Effusion", "Pneumonia", "Pneumothorax")
CSV_GLOB = "MS_CXR_Local_Alignment_v*.csv"
IMAGE_ROOTS = (".", "mimic-cxr-jpg")


def read_mscxr(root: Path) -> BenchmarkData:
    """One record per film, with one box per phrase row (labelled by category) and the phrases."""
    files = sorted(root.glob(CSV_GLOB))
    if not files:
        raise DatasetLayoutError(f"no {CSV_GLOB} in the MS-CXR folder")
    rows_by_image: dict[str, list[dict[str, str]]] = {}
    with files[-1].open(encoding="utf-8", newline="") as handle:  # the latest version
        for row in csv.DictReader(handle):
            rows_by_image.setdefault(row["path"].strip(), []).append(row)
    records: list[ManifestRecord] = []
    phrases: dict[str, tuple[str, ...]] = {}
    skipped: dict[str, int] = {}
    for relative, rows in rows_by_image.items():
        candidates = [root / base / relative for base in IMAGE_ROOTS]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            count_skip(skipped, "image file not found")
            continue
        size = image_size(path)
        boxes: list[Box] = []
        for row in rows:
            category = row["category_name"].strip()
            if category not in CLASSES:
                raise DatasetLayoutError(f"unknown MS-CXR category {category!r}")
            xywh = (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
            source = (float(row["image_width"]), float(row["image_height"]))
            boxes.append(scaled_box(category, xywh, source, size))
        split = (rows[0].get("split") or "test").strip().lower()
        split = {"valid": "val", "validation": "val"}.get(split, split)
        labels = {name: int(any(b.label == name for b in boxes)) for name in CLASSES}
        records.append(ManifestRecord(image=str(path.absolute()), split=split, source=NAME,
                                      labels=labels, boxes=boxes))
        phrases[records[-1].image] = tuple(" ".join(row["label_text"].split()) for row in rows)
    has_split = any("split" in rows[0] for rows in rows_by_image.values())
    data = BenchmarkData(
        name=NAME, records=records, classes=(), layout=f"official ({files[-1].name})",
        split_note="the CSV's split column" if has_split else "no split column: every film is test",
        skipped=skipped, phrases=phrases,
    )
    logger.info("mscxr: %s", data.counts())
    return data
