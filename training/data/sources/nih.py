"""NIH ChestX-ray14 (adult frontal films, NIH Clinical Center) with label-template reports and boxes.

Each film has the 14 official NIH labels (text-mined from reports, noisy) and `no_finding`. Pretraining
text comes from `training.reports.templates.nih_report`; evaluation labels are the pathology entities of
`NIH_FINDINGS` (plus `normal` for "No Finding"), so per-finding AUROC reads the query that the label
trained. The shared set ships a patient-level `split` (train/val), used as is. NIH radiologist boxes
(converted pixels, x0 y0 x1 y1) become `Box(label=entity, x, y, w, h)` for finding grounding.

The set merges two public copies whose label spreads differ (one holds mostly pneumonia and no-finding
films, the other spreads over all 14 labels), so which copy a film came from predicts several labels by
itself. Each record keeps its copy as `origin` (the `source` column), and the evaluation ranks within
each copy as well as pooled (`training/metrics/origin_dependence.py`).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from training.data.manifest import Box, ManifestRecord
from training.reports.templates import NIH_FINDINGS, nih_report

logger = logging.getLogger(__name__)

SOURCE = "nih-cxr14"
#: NIH label column -> the pathology entity its evaluation reads (the 14 findings and no_finding).
NIH_EVALUATION_ENTITIES: dict[str, str] = {
    **{name: entity for name, (entity, _) in NIH_FINDINGS.items()}, "no_finding": "normal",
}
#: NIH box list names (as in `boxes`) -> manifest label column.
_BOX_NAMES: dict[str, str] = {"infiltrate": "infiltration", "pleural thickening": "pleural_thickening"}


def _boxes(raw: str) -> list[Box]:
    """`boxes` JSON [{finding, box: [x0, y0, x1, y1]}] -> Boxes labelled with the finding's entity."""
    boxes = []
    for item in json.loads(raw) if raw.strip() else []:
        name = str(item["finding"]).strip().lower()
        name = _BOX_NAMES.get(name, name.replace(" ", "_"))
        if name not in NIH_FINDINGS:
            raise ValueError(f"NIH box finding {item['finding']!r} is not one of the 14 labels")
        x0, y0, x1, y1 = (float(v) for v in item["box"])
        boxes.append(Box(label=NIH_FINDINGS[name][0], x=x0, y=y0, w=x1 - x0, h=y1 - y0))
    return boxes


def read_nih_cxr14(root: Path) -> list[ManifestRecord]:
    """One record per film: template report, entity labels, boxes; the manifest's patient-level split."""
    records: list[ManifestRecord] = []
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            labels = {name: int(row[name]) for name in NIH_EVALUATION_ENTITIES}
            records.append(
                ManifestRecord(
                    image=str((root / row["image"]).resolve()),
                    split=row["split"].strip(),
                    source=SOURCE,
                    view="frontal",  # PA or AP; the set holds frontal films only
                    report=nih_report({k: v for k, v in labels.items()}),
                    labels={NIH_EVALUATION_ENTITIES[name]: value for name, value in labels.items()},
                    boxes=_boxes(row.get("boxes") or ""),
                    origin=(row.get("source") or "").strip(),
                )
            )
    logger.info("nih-cxr14: %d records", len(records))
    return records
