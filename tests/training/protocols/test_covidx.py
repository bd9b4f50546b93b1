"""COVIDx CXR-4 reader on the official split files around real covid-chestxray films."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from training.protocols.covidx import parse_line, read_covidx
from training.protocols.datasets import DatasetLayoutError


def test_line_format_and_classes() -> None:
    assert parse_line("419639-003251 MIDRC-1.png positive ricord") == ("MIDRC-1.png", 1)
    assert parse_line("p2 b.jpg negative bimcv") == ("b.jpg", 0)
    with pytest.raises(DatasetLayoutError, match="pneumonia"):
        parse_line("p3 c.jpg pneumonia sirm")


@pytest.mark.shared_data
def test_official_splits_and_labels(shared_data: Path, tmp_path: Path) -> None:
    with (shared_data / "covid-chestxray" / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["view"] in {"PA", "AP"}]
    positives = [r for r in rows if r["finding"] == "COVID-19"][:3]
    negatives = [r for r in rows if r["finding"] == "No Finding"][:3]
    root = tmp_path / "covidx"
    expected: dict[str, tuple[str, int]] = {}
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for index, row in enumerate(positives + negatives):
        split = ("train", "val", "test")[index % 3]
        source = shared_data / "covid-chestxray" / row["image"]
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / source.name).symlink_to(source)
        label = "positive" if row in positives else "negative"
        lines[split].append(f"{row['patient_id']} {source.name} {label} ieee8023")
        expected[source.name] = (split, int(label == "positive"))
    lines["test"].append("999 not-on-disk.png positive bimcv")
    for split, entries in lines.items():
        (root / f"{split}.txt").write_text("\n".join(entries) + "\n", encoding="utf-8")
    data = read_covidx(root)
    found = {Path(r.image).name: (r.split, (r.labels or {})["COVID-19"]) for r in data.records}
    assert found == expected
    assert data.skipped == {"image file not found": 1}
