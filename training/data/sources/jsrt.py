"""JSRT with SCR organ masks: 145 adult PA films, 5 expert masks each, nodule 0/1.

No official split ships with this subset: `hash_split` of the file name gives a fixed 80/20 train/val.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from training.data.manifest import ManifestRecord
from training.data.sources.splits import hash_split
from training.reports.templates import jsrt_report

logger = logging.getLogger(__name__)

SOURCE = "jsrt-scr"
#: The SCR outlines of every JSRT film: exactly the contract's segmentation structures, in its order.
JSRT_STRUCTURES: tuple[str, ...] = SEGMENTATION_STRUCTURES


def read_jsrt_scr(root: Path, *, val_fraction: float = 0.2) -> list[ManifestRecord]:
    """One record per film with its 5 masks, label {nodule: 0/1} and the label's template report."""
    records: list[ManifestRecord] = []
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            records.append(
                ManifestRecord(
                    image=str((root / row["image"]).resolve()),
                    split=hash_split(Path(row["image"]).name, val_fraction),
                    source=SOURCE,
                    view="PA",
                    labels={"nodule": int(row["nodule"])},
                    report=jsrt_report(int(row["nodule"])),
                    masks={name: str((root / row[name]).resolve()) for name in JSRT_STRUCTURES},
                )
            )
    logger.info("jsrt-scr: %d records", len(records))
    return records
