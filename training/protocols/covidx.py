"""COVIDx CXR-4 (Wu et al. 2023, Kaggle/GitHub `lindawangg/COVID-Net`) in its official layout.

`train.txt`, `val.txt`, `test.txt`: one film per line, space separated
`<patient id> <filename> <class> <data source>` with class `positive` / `negative` (COVID-19);
images in the folder of the same name (`train/`, `val/`, `test/`). The official split is used as is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.data.manifest import ManifestRecord
from training.protocols.datasets import BenchmarkData, DatasetLayoutError, count_skip

logger = logging.getLogger(__name__)

NAME = "covidx"
CLASS = "COVID-19"
CLASSES: tuple[str, ...] = (CLASS,)
SPLIT_FILES: dict[str, str] = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}
LABELS: dict[str, int] = {"positive": 1, "negative": 0, "covid-19": 1, "normal": 0}


def parse_line(line: str) -> tuple[str, int]:
    """`<pid> <filename> <class> <source>` -> (filename, 0/1)."""
    parts = line.split()
    if len(parts) < 3:
        raise DatasetLayoutError("a COVIDx line needs '<patient> <filename> <class> [<source>]'")
    label = parts[2].strip().lower()
    if label not in LABELS:
        raise DatasetLayoutError(f"unknown COVIDx class {parts[2]!r} (expected positive/negative)")
    return parts[1], LABELS[label]


def read_covidx(root: Path) -> BenchmarkData:
    """Records of every listed film found in its split folder."""
    if not (root / SPLIT_FILES["test"]).is_file():
        raise DatasetLayoutError("test.txt not in the COVIDx folder")
    records: list[ManifestRecord] = []
    skipped: dict[str, int] = {}
    for split, file_name in SPLIT_FILES.items():
        path = root / file_name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            name, label = parse_line(line)
            image = root / split / name
            if not image.is_file():
                count_skip(skipped, "image file not found")
                continue
            records.append(ManifestRecord(image=str(image.absolute()), split=split, source=NAME,
                                          labels={CLASS: label}))
    data = BenchmarkData(name=NAME, records=records, classes=CLASSES, layout="official (train/val/test.txt)",
                         split_note="official train.txt / val.txt / test.txt", skipped=skipped)
    logger.info("covidx: %s", data.counts())
    return data
