"""ieee8023 covid-chestxray: frontal and lateral adult CXRs with clinical notes, lung masks and boxes.

Folder layout (../shared/data/covid-chestxray): `manifest.csv` with columns image, split (by patient),
view (PA | AP | AP Supine | L), text (clinical notes), finding, lung_mask (path or empty), lung_boxes
(JSON list of {label, x, y, w, h} or empty). Lateral views are read too (their `view` says "L") so
callers can choose; pretraining keeps FRONTAL_VIEWS only.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from training.data.manifest import Box, ManifestRecord

logger = logging.getLogger(__name__)

SOURCE = "covid-chestxray"
FRONTAL_VIEWS: frozenset[str] = frozenset({"PA", "AP", "AP Supine"})
#: Mask key of the single union-of-both-lungs mask this set ships (not split by side: see finetune_seg).
LUNGS_MASK = "lungs"


def _boxes(cell: str) -> list[Box]:
    if not cell.strip():
        return []
    return [
        Box(
            label=str(item["label"]),
            x=float(item["x"]),
            y=float(item["y"]),
            w=float(item["w"]),
            h=float(item["h"]),
        )
        for item in json.loads(cell)
    ]


def read_covid_chestxray(root: Path, *, frontal_only: bool = False) -> list[ManifestRecord]:
    """One record per image; `labels` holds the `finding` as {finding_lowercase: 1}."""
    records: list[ManifestRecord] = []
    with (root / "manifest.csv").open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            view = row["view"].strip()
            if frontal_only and view not in FRONTAL_VIEWS:
                continue
            text = row["text"].strip()
            finding = row["finding"].strip()
            records.append(
                ManifestRecord(
                    image=str((root / row["image"]).resolve()),
                    split=row["split"].strip(),
                    source=SOURCE,
                    view=view,
                    report=text or None,
                    labels={finding.lower(): 1} if finding else None,
                    masks={LUNGS_MASK: str((root / row["lung_mask"]).resolve())}
                    if row["lung_mask"].strip()
                    else None,
                    boxes=_boxes(row["lung_boxes"]),
                )
            )
    logger.info("covid-chestxray: %d records (frontal_only=%s)", len(records), frontal_only)
    return records
