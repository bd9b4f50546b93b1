"""MS-CXR reader: phrase rows over MIMIC-CXR-JPG paths, boxes rescaled to the file on disk."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from training.protocols.mscxr import read_mscxr

from .trees import nih_images

HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
          "image_height", "split"]


@pytest.mark.shared_data
def test_phrases_become_category_boxes_in_file_pixels(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "ms-cxr"
    films = nih_images(shared_data, 2)  # 512 x 512 JPEGs standing in for MIMIC-CXR-JPG files
    paths = [f"files/p10/p1000000{i}/s5000000{i}/{film.stem}.jpg" for i, film in enumerate(films)]
    for film, relative in zip(films, paths, strict=True):
        target = root / "mimic-cxr-jpg" / relative
        target.parent.mkdir(parents=True)
        target.symlink_to(film)
    rows = [
        ["d0", "Pneumonia", "patchy opacity at the left base", paths[0], "100", "200", "300", "100", "1024",
         "1024", "test"],
        ["d0", "Pleural Effusion", "small left effusion", paths[0], "600", "700", "200", "150", "1024",
         "1024", "test"],
        ["d1", "Cardiomegaly", "enlarged heart", paths[1], "256", "512", "512", "256", "2048", "2048", "val"],
        ["d2", "Edema", "edema", "files/p11/p11/s1/none.jpg", "0", "0", "1", "1", "10", "10", "test"],
    ]
    with (root / "MS_CXR_Local_Alignment_v1.1.0.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    data = read_mscxr(root)
    assert data.skipped == {"image file not found": 1}
    by_stem = {Path(r.image).stem: r for r in data.records}
    first, second = (by_stem[film.stem] for film in films)
    assert first.split == "test" and second.split == "val"
    assert [(b.label, b.x, b.y, b.w, b.h) for b in first.boxes] == [
        ("Pneumonia", 50, 100, 150, 50), ("Pleural Effusion", 300, 350, 100, 75)]
    assert [(b.label, b.x, b.y, b.w, b.h) for b in second.boxes] == [("Cardiomegaly", 64, 128, 128, 64)]
    assert (first.labels or {})["Pneumonia"] == 1 and (first.labels or {})["Cardiomegaly"] == 0
