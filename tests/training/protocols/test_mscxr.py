"""MS-CXR reader: phrase rows over MIMIC-CXR-JPG paths, boxes rescaled to the file on disk, phrases kept
beside their boxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training.protocol_trees import write_mscxr_tree
from training.protocols.mscxr import read_mscxr


@pytest.mark.shared_data
def test_phrases_become_category_boxes_in_file_pixels(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "ms-cxr"
    films = write_mscxr_tree(shared_data, root, phrases=("patchy  opacity at the left base ",
                                                          "small left effusion", "enlarged heart"))
    data = read_mscxr(root)
    assert data.skipped == {"image file not found": 1}
    by_stem = {Path(r.image).stem: r for r in data.records}
    first, second = (by_stem[film.stem] for film in films)
    assert first.split == "test" and second.split == "val"
    assert [(b.label, b.x, b.y, b.w, b.h) for b in first.boxes] == [
        ("Pneumonia", 50, 100, 150, 50), ("Pleural Effusion", 300, 350, 100, 75)]
    assert [(b.label, b.x, b.y, b.w, b.h) for b in second.boxes] == [("Cardiomegaly", 64, 128, 128, 64)]
    assert (first.labels or {})["Pneumonia"] == 1 and (first.labels or {})["Cardiomegaly"] == 0
    # one phrase per box, in box order, whitespace collapsed
    assert data.phrases[first.image] == ("patchy opacity at the left base", "small left effusion")
    assert data.phrases[second.image] == ("enlarged heart",)
