"""NIH ChestX-ray14: the reader on the real shared files, and the label templates through the parser."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import decode_path
from app.contract.vocabulary import ANATOMY, CXR14_TO_PATHOLOGY, PATHOLOGY
from training.data.sources import read_nih_cxr14
from training.data.sources.nih import NIH_EVALUATION_ENTITIES
from training.reports import parse_report
from training.reports.templates import NIH_FINDINGS, nih_report

#: Anatomies that carry a side or a zone: a label template must never produce one (labels have none).
LOCATED = [
    name for name in ANATOMY if name.startswith(("left", "right")) or name in {"lung_apices", "lung_bases"}
]


def _parsed(text: str) -> tuple[dict[str, int], set[str]]:
    labels = parse_report(text)
    pathology = {PATHOLOGY[i]: int(v) for i, v in enumerate(labels.pathology) if v >= 0}
    anatomy = {ANATOMY[i] for i, v in enumerate(labels.anatomy) if v == 1}
    return pathology, anatomy


def test_the_mapping_is_the_released_cxr14_mapping() -> None:
    released = {name.lower(): entity for name, entity in CXR14_TO_PATHOLOGY.items()}
    assert {name: entity for name, (entity, _) in NIH_FINDINGS.items()} == released
    assert NIH_EVALUATION_ENTITIES["no_finding"] == "normal"


@pytest.mark.parametrize("finding", sorted(NIH_FINDINGS))
def test_each_label_parses_to_its_entity_present_and_every_other_absent(finding: str) -> None:
    pathology, anatomy = _parsed(nih_report({finding: 1}))
    entity = NIH_FINDINGS[finding][0]
    assert pathology[entity] == 1
    others = {e for name, (e, _) in NIH_FINDINGS.items() if name != finding}
    assert all(pathology[e] == 0 for e in others)
    assert pathology["normal"] == 0
    assert not anatomy & set(LOCATED)  # no side or zone invented


def test_a_film_without_findings_is_normal_and_negates_all_fourteen() -> None:
    pathology, anatomy = _parsed(nih_report({"no_finding": 1}))
    assert pathology["normal"] == 1
    assert all(pathology[entity] == 0 for entity, _ in NIH_FINDINGS.values())
    assert not anatomy & set(LOCATED)


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown NIH label"):
        nih_report({"fracture": 1})


@pytest.mark.shared_data
def test_reader_counts_split_labels_and_boxes(shared_data: Path) -> None:
    root = shared_data / "nih-cxr14"
    records = read_nih_cxr14(root)
    assert len(records) == 1265
    assert Counter(r.split for r in records) == {"train": 1015, "val": 250}
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    patients: dict[str, set[str]] = {}
    for record in records:
        row = rows[str(Path(record.image).relative_to(root.resolve()))]
        patients.setdefault(row["patient_id"], set()).add(record.split)
        for column, entity in NIH_EVALUATION_ENTITIES.items():
            assert record.labels is not None and record.labels[entity] == int(row[column])
        assert record.report == nih_report({c: int(row[c]) for c in NIH_EVALUATION_ENTITIES})
    assert all(len(splits) == 1 for splits in patients.values())  # split by patient
    boxed = [r for r in records if r.boxes]
    assert len(boxed) == 23
    first = boxed[0]
    raw = json.loads(rows[str(Path(first.image).relative_to(root.resolve()))]["boxes"])[0]
    x0, y0, x1, y1 = raw["box"]
    box = first.boxes[0]
    assert box.label == NIH_FINDINGS[raw["finding"].lower()][0]
    assert (box.x, box.y) == (x0, y0) and np.isclose(box.w, x1 - x0) and np.isclose(box.h, y1 - y0)
    pixels = decode_path(first.image).pixels
    assert box.x + box.w <= pixels.shape[1] and box.y + box.h <= pixels.shape[0]


@pytest.mark.shared_data
def test_each_film_keeps_the_public_copy_it_came_from(shared_data: Path) -> None:
    """The two copies spread the labels differently, which the evaluation's within-copy ranks rely on."""
    root = shared_data / "nih-cxr14"
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        copies = {str((root / row["image"]).resolve()): row["source"] for row in csv.DictReader(handle)}
    records = read_nih_cxr14(root)
    assert all(record.origin == copies[record.image] for record in records)
    by_copy = Counter(record.origin for record in records if record.split == "val")
    assert len(by_copy) == 2 and sum(by_copy.values()) == 250
    nodules = Counter(r.origin for r in records if r.split == "val" and r.labels and r.labels["nodule"])
    pneumonias = Counter(r.origin for r in records if r.split == "val" and r.labels and r.labels["pneumonia"])
    assert nodules.most_common(1)[0][0] != pneumonias.most_common(1)[0][0]  # each sits mostly in one copy
