"""RSNA Pneumonia reader on a small official tree around real chest DICOMs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training.protocol_trees import RSNA_FILMS as FILMS
from tests.support.training.protocol_trees import write_rsna_tree as _tree
from training.protocols.rsna import read_rsna


@pytest.mark.shared_data
def test_boxes_and_targets_per_patient(shared_data: Path, tmp_path: Path) -> None:
    data = read_rsna(_tree(shared_data, tmp_path / "rsna"))
    by_pid = {Path(record.image).stem: record for record in data.records}
    assert set(by_pid) == set(FILMS)
    assert data.skipped == {"image file not found": 1}
    assert {pid: record.labels for pid, record in by_pid.items()} == {
        "p-a": {"Pneumonia": 1}, "p-b": {"Pneumonia": 0}, "p-c": {"Pneumonia": 1}}
    assert [(b.x, b.y, b.w, b.h) for b in by_pid["p-a"].boxes] == [(100, 200, 50, 60), (600, 220, 80, 90)]
    assert [(b.label, b.x, b.w) for b in by_pid["p-c"].boxes] == [("Pneumonia", 300.5, 40.5)]
    assert by_pid["p-b"].boxes == []
    assert "NOT the papers' split" in data.split_note
    assert {record.split for record in data.records} <= {"train", "val", "test"}


@pytest.mark.shared_data
def test_split_files_decide_the_split_and_drop_unlisted_patients(shared_data: Path, tmp_path: Path) -> None:
    root = _tree(shared_data, tmp_path / "rsna")
    (root / "splits").mkdir()
    (root / "splits" / "test.csv").write_text("image_path,label\nstage_2_train_images/p-a.dcm,1\n"
                                              "stage_2_train_images/p-b.dcm,0\n", encoding="utf-8")
    (root / "splits" / "valid.txt").write_text("p-c\n", encoding="utf-8")
    data = read_rsna(root)
    assert {Path(r.image).stem: r.split for r in data.records} == {"p-a": "test", "p-b": "test", "p-c": "val"}
    assert data.split_note == "split files in splits/"
