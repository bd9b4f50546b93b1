"""What every benchmark reader returns, where each data set is looked for, and the split helpers.

Readers turn each set's OFFICIAL layout into `ManifestRecord`s (the one record type of training and
evaluation) whose `labels` are keyed by the set's own class names and whose `boxes` carry those names
too; `training.protocols.prompts` maps class names to model queries afterwards, so a reader knows nothing
about the model. Splits are "train" / "val" / "test": zero-shot scores "test" (and chooses a threshold on
"val"), fine-tuning trains on a seeded fraction of "train".
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from training.data.manifest import Box, ManifestRecord
from training.data.sources.splits import hash_split

logger = logging.getLogger(__name__)

#: Benchmark names in report order.
DATASETS: tuple[str, ...] = ("cxr14", "rsna", "siim", "covidx", "mscxr")
#: Folder names under --data-root that each benchmark is looked for in (first match wins).
DATASET_DIRS: dict[str, tuple[str, ...]] = {
    "cxr14": ("cxr14", "nih-cxr14", "ChestX-ray14", "chestxray14", "nih"),
    "rsna": ("rsna", "rsna-pneumonia", "rsna-pneumonia-detection-challenge"),
    "siim": ("siim", "siim-acr", "siim-acr-pneumothorax", "siim-acr-pneumothorax-segmentation"),
    "covidx": ("covidx", "covidx-cxr4", "covidx-cxr-4", "COVIDx"),
    "mscxr": ("mscxr", "ms-cxr", "MS-CXR"),
}
#: Files and folders whose names the split-file readers accept as an image key column.
KEY_COLUMNS: tuple[str, ...] = ("patientId", "patient_id", "ImageId", "image_id", "dicom_id", "ID", "id",
                                "filename", "image", "image_path", "img_path", "path", "Image Index")


class DatasetLayoutError(ValueError):
    """A data-set folder that exists but does not follow the official layout."""


@dataclass
class BenchmarkData:
    """One benchmark as read from disk."""

    name: str  # one of DATASETS
    records: list[ManifestRecord]  # labels/boxes keyed by class name; split train|val|test
    classes: tuple[str, ...]  # class names scored by zero-shot classification, in table order
    layout: str  # which layout was read ("official", "shared manifest", ...)
    split_note: str  # how train/val/test were made: written into the report
    #: image path -> RLE strings (SIIM masks, decoded at the image's size when needed)
    rle_masks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ground_all_splits: bool = False  # boxes are never trained on: ground boxed films of every split
    #: image path -> the phrase of each of its boxes, in `record.boxes` order (MS-CXR: grounded by text)
    phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (missing images, ...)

    def split(self, name: str) -> list[ManifestRecord]:
        return [record for record in self.records if record.split == name]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records:
            out[record.split] = out.get(record.split, 0) + 1
        return dict(sorted(out.items()))


def find_dataset_dir(data_root: Path, name: str) -> Path | None:
    """The first existing folder of DATASET_DIRS[name] under data_root, else None."""
    for candidate in DATASET_DIRS[name]:
        path = data_root / candidate
        if path.is_dir():
            return path
    return None


def carve_val(key: str, val_fraction: float) -> str:
    """'val' or 'train' for a non-test film from the SHA-256 of its PATIENT key (one patient, one side)."""
    return hash_split(key, val_fraction)


def three_way_split(key: str, val_fraction: float = 0.1, test_fraction: float = 0.2) -> str:
    """Deterministic patient-level train/val/test for sets without public split files."""
    if hash_split(f"test:{key}", test_fraction) == "val":
        return "test"
    return carve_val(key, val_fraction / (1.0 - test_fraction))


def read_split_files(folder: Path) -> dict[str, str] | None:
    """{image key (file stem) -> split} from `train|val|valid|test` `.csv`/`.txt` files in `folder`.

    CSV: the first column named in KEY_COLUMNS (else the first column); TXT: the first whitespace field
    of each line. Keys are file stems, so a path column (`.../<patientId>.dcm`) and a bare id agree.
    None when the folder holds no split file.
    """
    if not folder.is_dir():
        return None
    splits: dict[str, str] = {}
    for split, names in (("train", ("train",)), ("val", ("val", "valid", "validation")), ("test", ("test",))):
        for stem in names:
            for suffix in (".csv", ".txt"):
                path = folder / f"{stem}{suffix}"
                if path.is_file():
                    for key in _split_keys(path):
                        splits[key] = split
    return splits or None


def _split_keys(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".csv":
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            if not fields:
                return
            column = next((name for name in fields if name.strip() in KEY_COLUMNS), fields[0])
            for row in reader:
                value = (row.get(column) or "").strip()
                if value:
                    yield file_key(value)
        else:
            for line in handle:
                parts = line.split()
                if parts:
                    yield file_key(parts[0])


#: Image file suffixes stripped from keys (and only those: SIIM ImageIds are dotted UIDs).
IMAGE_SUFFIXES: tuple[str, ...] = (".dcm", ".png", ".jpg", ".jpeg")


def file_key(value: str) -> str:
    """`dir/<key>.dcm` or `<key>` -> `<key>`: the file name without an image suffix."""
    name = Path(value).name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in IMAGE_SUFFIXES else name


def index_images(folders: Iterable[Path], suffixes: tuple[str, ...]) -> dict[str, Path]:
    """{file stem -> path} of every image under the folders (recursively). Stems, not names, so that a
    resized JPEG copy of an official PNG/DICOM set (as the shared NIH subset is) is found too."""
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in suffixes and path.is_file():
                index.setdefault(path.stem, path)
    return index


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only (PIL decodes no pixels here)."""
    with Image.open(path) as image:
        return image.size


def scaled_box(label: str, xywh: tuple[float, float, float, float], from_wh: tuple[float, float],
               to_wh: tuple[float, float]) -> Box:
    """A box given in one pixel grid (e.g. CXR14's 1024 x 1024 release) in another (the file on disk)."""
    sx, sy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    x, y, w, h = xywh
    return Box(label=label, x=x * sx, y=y * sy, w=w * sx, h=h * sy)


Reader = Callable[[Path], BenchmarkData]


def count_skip(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def merge_labels(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Several rows of one image (one per box) -> one label dict: present wins."""
    merged: dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            merged[name] = max(merged.get(name, 0), int(value))
    return merged
