"""Kermany paediatric CXRs (Normal / Bacterial / Viral-Other) with template reports.

The set has labels but no reports, so pretraining uses `training.reports.templates.kermany_report`,
a documented deterministic sentence per label. There is no official split of this subset: each file
name is assigned by `hash_split` (SHA-256, 80 % train / 20 % val), so the split never changes.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from training.data.manifest import ManifestRecord
from training.data.sources.splits import hash_split
from training.reports.templates import kermany_report

logger = logging.getLogger(__name__)

SOURCE = "kermany-pediatric"
PNEUMONIA_LABELS: frozenset[str] = frozenset({"Bacterial", "Viral-Other"})


def read_kermany_pediatric(root: Path, *, val_fraction: float = 0.2) -> list[ManifestRecord]:
    """One record per image, labels {normal, pneumonia} and a template report from the label."""
    records: list[ManifestRecord] = []
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            label = row["label"].strip()
            pneumonia = int(label in PNEUMONIA_LABELS)
            records.append(
                ManifestRecord(
                    image=str((root / row["image"]).resolve()),
                    split=hash_split(Path(row["image"]).name, val_fraction),
                    source=SOURCE,
                    view="PA",
                    report=kermany_report(label),
                    labels={"normal": 1 - pneumonia, "pneumonia": pneumonia},
                )
            )
    logger.info("kermany-pediatric: %d records", len(records))
    return records
