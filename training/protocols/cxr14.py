"""NIH ChestX-ray14 in its official layout, or the shared subset's manifest.

Official release (NIH Clinical Center): `Data_Entry_2017.csv` (`Image Index`, `Finding Labels` joined by
`|` or `No Finding`, `Patient ID`, `View Position`, ...), `BBox_List_2017.csv` (`Image Index`,
`Finding Label`, `Bbox [x,y,w,h]` spread over four columns, pixels of the released 1024 x 1024 PNGs;
the box list spells `Infiltrate` where the labels say `Infiltration`), `train_val_list.txt` and
`test_list.txt` (the official patient-level split), images in `images/` (or the `images_NNN/images/`
folders of the tarballs). Test = `test_list.txt`; validation (threshold choice) = 10 % of the
`train_val_list.txt` patients by SHA-256 of the patient ID; the rest is train.

The shared subset (`../shared/data/nih-cxr14`) is not in that layout: one `manifest.csv` with 0/1
columns, a patient-level train/val split, JPEG files at 512 px and boxes already in those pixels. It is
read through the project's NIH reader (`training.data.sources.nih`): its `val` becomes test (the default
bundle never trained on it), and 10 % of its `train` patients become validation.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from app.contract.vocabulary import CXR14_TO_PATHOLOGY
from training.data.manifest import Box, ManifestRecord
from training.data.sources.nih import read_nih_cxr14
from training.protocols.datasets import (
    BenchmarkData,
    DatasetLayoutError,
    carve_val,
    count_skip,
    image_size,
    index_images,
    read_split_files,
    scaled_box,
)

logger = logging.getLogger(__name__)

NAME = "cxr14"
#: The 14 official classes, in the order of the entity mapping (and of the MedKLIP/MeDSLIP tables).
CLASSES: tuple[str, ...] = tuple(CXR14_TO_PATHOLOGY)
DATA_ENTRY = "Data_Entry_2017.csv"
BBOX_LIST = "BBox_List_2017.csv"
TEST_LIST = "test_list.txt"
TRAIN_VAL_LIST = "train_val_list.txt"
NO_FINDING = "No Finding"
#: Pixel grid of the released PNGs, the grid of BBox_List_2017.csv.
OFFICIAL_SIZE = (1024.0, 1024.0)
#: Box list spelling -> label spelling.
BOX_NAMES: dict[str, str] = {"Infiltrate": "Infiltration"}
VAL_FRACTION = 0.1
SPLIT_DIR = "splits"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def parse_finding_labels(text: str) -> dict[str, int]:
    """`Finding Labels` ("Effusion|Mass", "No Finding") -> 0/1 for each of the 14 classes."""
    found = {part.strip() for part in text.split("|") if part.strip()} - {NO_FINDING}
    unknown = found - set(CLASSES)
    if unknown:
        raise DatasetLayoutError(f"unknown CXR14 finding label(s) {sorted(unknown)}")
    return {name: int(name in found) for name in CLASSES}


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def read_bbox_list(path: Path) -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    """`BBox_List_2017.csv` -> {Image Index: [(class, (x, y, w, h) in the 1024 grid)]}."""
    boxes: dict[str, list[tuple[str, tuple[float, float, float, float]]]] = {}
    if not path.is_file():
        return boxes
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header: Image Index,Finding Label,Bbox [x,y,w,h],,,
        for row in reader:
            if len(row) < 6 or not row[0].strip():
                continue
            label = BOX_NAMES.get(row[1].strip(), row[1].strip())
            if label not in CLASSES:
                raise DatasetLayoutError(f"unknown CXR14 box label {row[1]!r}")
            x, y, w, h = (float(value) for value in row[2:6])
            boxes.setdefault(row[0].strip(), []).append((label, (x, y, w, h)))
    return boxes


def read_official(root: Path) -> BenchmarkData:
    """Records of every listed film whose image is on disk (missing ones are counted, not fatal).

    Split files in `splits/` (`train|val|test` `.csv`/`.txt`, e.g. the `test.csv` that the MedKLIP and
    MeDSLIP zero-shot samples ship) replace the official lists: films they do not name are left out.
    """
    paper_split = read_split_files(root / SPLIT_DIR)
    test = _read_list(root / TEST_LIST)
    if not test and paper_split is None:
        raise DatasetLayoutError(f"{TEST_LIST} is missing or empty: the official split is needed")
    boxes = read_bbox_list(root / BBOX_LIST)
    images = index_images([root / "images", *sorted(root.glob("images_*"))], IMAGE_SUFFIXES)
    records: list[ManifestRecord] = []
    skipped: dict[str, int] = {}
    with (root / DATA_ENTRY).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["Image Index"].strip()
            path = images.get(Path(name).stem)
            if path is None:
                count_skip(skipped, "image file not found")
                continue
            if paper_split is not None:
                split = paper_split.get(Path(name).stem, "")
                if not split:
                    count_skip(skipped, "not in the split files")
                    continue
            else:
                split = "test" if name in test else carve_val(row["Patient ID"].strip(), VAL_FRACTION)
            film_boxes: list[Box] = []
            if name in boxes:
                size = image_size(path)
                film_boxes = [scaled_box(label, xywh, OFFICIAL_SIZE, size) for label, xywh in boxes[name]]
            records.append(ManifestRecord(
                image=str(path.absolute()), split=split, source=NAME,
                view=row.get("View Position", "").strip(),
                labels=parse_finding_labels(row["Finding Labels"]), boxes=film_boxes,
            ))
    return BenchmarkData(
        name=NAME, records=records, classes=CLASSES, layout="official (Data_Entry_2017.csv)",
        split_note=(f"split files in {SPLIT_DIR}/" if paper_split is not None else
                    f"test = {TEST_LIST}; val = {VAL_FRACTION:.0%} of the other patients (SHA-256 of "
                    "Patient ID)") + "; boxes from BBox_List_2017.csv rescaled from 1024 px to the file's "
                                     "size",
        skipped=skipped,
    )


#: Entity -> CXR14 class (the inverse of the one-to-one entity mapping).
_CLASS_OF_ENTITY = {entity: name for name, entity in CXR14_TO_PATHOLOGY.items()}


def _patient(image: str) -> str:
    """NIH file names are `<patient>_<follow-up>.<ext>`: the patient is the part before `_`."""
    return Path(image).stem.split("_")[0]


def read_shared_manifest(root: Path) -> BenchmarkData:
    """The shared subset through the project's NIH reader; entity labels back to class names."""
    records: list[ManifestRecord] = []
    for record in read_nih_cxr14(root):
        labels = {_CLASS_OF_ENTITY[k]: v for k, v in (record.labels or {}).items() if k in _CLASS_OF_ENTITY}
        boxes = [Box(_CLASS_OF_ENTITY[b.label], b.x, b.y, b.w, b.h) for b in record.boxes]
        split = "test" if record.split == "val" else carve_val(_patient(record.image), VAL_FRACTION)
        records.append(ManifestRecord(image=record.image, split=split, source=NAME, view=record.view,
                                      labels=labels, boxes=boxes))
    return BenchmarkData(
        name=NAME, records=records, classes=CLASSES, layout="shared manifest (manifest.csv)",
        split_note="shared subset, not the official split: test = the manifest's val patients; val = "
                   f"{VAL_FRACTION:.0%} of its train patients (SHA-256); boxed films of every split are "
                   "grounded (boxes are never trained on)",
        ground_all_splits=True,
    )


def read_cxr14(root: Path) -> BenchmarkData:
    """Official layout when `Data_Entry_2017.csv` is there, else the shared subset's `manifest.csv`."""
    if (root / DATA_ENTRY).is_file():
        data = read_official(root)
    elif (root / "manifest.csv").is_file():
        data = read_shared_manifest(root)
    else:
        raise DatasetLayoutError(f"neither {DATA_ENTRY} nor manifest.csv in the CXR14 folder")
    logger.info("cxr14 (%s): %s", data.layout, data.counts())
    return data
