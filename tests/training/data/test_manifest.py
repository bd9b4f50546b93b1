"""Manifest JSONL: round trip, relative paths, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.manifest import (
    Box,
    ManifestError,
    ManifestRecord,
    filter_split,
    read_manifest,
    write_manifest,
)
from training.data.sources.splits import hash_split


def test_round_trip_resolves_relative_paths(tmp_path: Path) -> None:
    records = [
        ManifestRecord(
            image="images/a.png",
            split="train",
            source="unit",
            view="PA",
            report="No effusion.",
            labels={"effusion": 0},
            masks={"heart": "masks/a.png"},
            boxes=[Box("Right Lung", 1.0, 2.0, 3.0, 4.0)],
        ),
        ManifestRecord(image="/abs/b.png", split="val", source="unit"),
    ]
    path = tmp_path / "sub" / "m.jsonl"
    assert write_manifest(records, path) == 2
    loaded = read_manifest(path)
    assert loaded[0].image == str((path.parent / "images/a.png").resolve())
    assert loaded[0].masks == {"heart": str((path.parent / "masks/a.png").resolve())}
    assert loaded[0].boxes == [Box("Right Lung", 1.0, 2.0, 3.0, 4.0)]
    assert loaded[0].labels == {"effusion": 0} and loaded[0].report == "No effusion."
    assert loaded[1].image == "/abs/b.png" and loaded[1].report is None
    assert [r.image for r in filter_split(loaded, "val")] == ["/abs/b.png"]


def test_origin_round_trips_and_is_left_out_when_empty(tmp_path: Path) -> None:
    copied = ManifestRecord(image="/a.png", split="val", source="nih-cxr14", origin="copy/one")
    plain = ManifestRecord(image="/b.png", split="val", source="kermany")
    assert copied.to_json()["origin"] == "copy/one"
    assert "origin" not in plain.to_json()  # manifests of one-collection sources stay as they were
    path = tmp_path / "m.jsonl"
    write_manifest([copied, plain], path)
    assert [r.origin for r in read_manifest(path)] == ["copy/one", ""]
    assert copied.resolved(tmp_path).origin == "copy/one"


@pytest.mark.parametrize(
    "line",
    [
        '{"image": "a.png", "split": "holdout", "source": "x"}',
        '{"image": "a.png", "split": "train", "source": "x", "labels": {"e": 2}}',
        '{"image": "a.png", "split": "train", "source": "x", "colour": "red"}',
        '{"split": "train", "source": "x"}',
        "not json",
    ],
)
def test_invalid_lines_are_rejected_with_the_line_number(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"image": "ok.png", "split": "train", "source": "x"}\n' + line + "\n")
    with pytest.raises(ManifestError, match="line 2"):
        read_manifest(path)


def test_hash_split_is_stable_and_near_80_20() -> None:
    assert hash_split("IM-0115-0001.jpg") == hash_split("IM-0115-0001.jpg")
    splits = [hash_split(f"file-{i}.jpg") for i in range(2000)]
    assert 0.17 < splits.count("val") / len(splits) < 0.23
