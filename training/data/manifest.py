"""The one training-data manifest format: JSONL, one record per image.

Every source reader produces these records and every dataset consumes them, so a new data source only
needs a reader, never a new dataset class. Relative paths in a manifest file are resolved against the
manifest file's folder, so a manifest and its images can move together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest record or file that does not follow the format."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the record's image (x, y = top-left corner)."""

    label: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class ManifestRecord:
    """One image with whatever supervision its source has."""

    image: str  # path to the image file (PNG/JPEG/DICOM)
    split: str  # "train" | "val" | "test"
    source: str  # data-set name, e.g. "covid-chestxray"
    view: str = ""  # acquisition view as the source spells it ("PA", "AP", "AP Supine", "L", ...)
    report: str | None = None  # report text (pretraining); None when the source has none
    labels: dict[str, int] | None = None  # entity -> 0/1, for fine-tuning and evaluation
    masks: dict[str, str] | None = None  # structure -> path of a binary mask at the image's size
    boxes: list[Box] = field(default_factory=list)
    # the public copy or sub-collection of `source` the file was taken from, where a source merges several
    # with different label spreads (NIH: two copies); "" when the source is one collection. Evaluation
    # ranks within each origin too, so a score that only recognises the copy is not read as a finding.
    origin: str = ""

    def validate(self) -> None:
        """Raise ManifestError when a field breaks the format (checked on read and write)."""
        if not self.image:
            raise ManifestError("record has an empty 'image' path")
        if self.split not in SPLITS:
            raise ManifestError(f"split {self.split!r} is not one of {SPLITS}")
        if not self.source:
            raise ManifestError("record has an empty 'source'")
        for name, value in (self.labels or {}).items():
            if value not in (0, 1):
                raise ManifestError(f"label {name!r} must be 0 or 1, got {value!r}")
        for box in self.boxes:
            if box.w <= 0 or box.h <= 0:
                raise ManifestError(f"box {box.label!r} has a non-positive size")

    def to_json(self) -> dict[str, Any]:
        """Plain dict without empty optional fields (keeps JSONL lines short)."""
        data = asdict(self)
        return {key: value for key, value in data.items()
                if value not in (None, [], {}) and not (key == "origin" and value == "")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifestRecord:
        known = {"image", "split", "source", "view", "report", "labels", "masks", "boxes", "origin"}
        unknown = set(data) - known
        if unknown:
            raise ManifestError(f"unknown manifest fields: {sorted(unknown)}")
        try:
            record = cls(
                image=str(data["image"]),
                split=str(data["split"]),
                source=str(data["source"]),
                view=str(data.get("view", "")),
                report=data.get("report"),
                labels={str(k): int(v) for k, v in data["labels"].items()} if data.get("labels") else None,
                masks={str(k): str(v) for k, v in data["masks"].items()} if data.get("masks") else None,
                boxes=[Box(**box) for box in data.get("boxes", [])],
                origin=str(data.get("origin", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"malformed manifest record: {exc}") from exc
        record.validate()
        return record

    def resolved(self, base: Path) -> ManifestRecord:
        """Copy with relative image/mask paths made absolute against `base`."""

        def resolve(path: str) -> str:
            return str(path if Path(path).is_absolute() else (base / path).resolve())

        masks = {name: resolve(p) for name, p in self.masks.items()} if self.masks else None
        return ManifestRecord(
            image=resolve(self.image),
            split=self.split,
            source=self.source,
            view=self.view,
            report=self.report,
            labels=self.labels,
            masks=masks,
            boxes=list(self.boxes),
            origin=self.origin,
        )


def write_manifest(records: Iterable[ManifestRecord], path: Path) -> int:
    """Write records as JSONL; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            record.validate()
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            count += 1
    logger.info("wrote %d manifest records to %s", count, path)
    return count


def read_manifest(path: Path) -> list[ManifestRecord]:
    """Read and validate a JSONL manifest; relative paths resolve against its folder."""
    base = path.resolve().parent
    records: list[ManifestRecord] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(ManifestRecord.from_json(json.loads(line)).resolved(base))
            except (json.JSONDecodeError, ManifestError) as exc:
                raise ManifestError(f"{path.name} line {line_number}: {exc}") from exc
    return records


def filter_split(records: Iterable[ManifestRecord], split: str) -> list[ManifestRecord]:
    """Records of one split, in manifest order."""
    return [record for record in records if record.split == split]
