"""CXR14 reader: the official files (written from the real NIH subset) and the shared manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training.protocol_trees import write_cxr14_tree
from training.protocols.cxr14 import CLASSES, parse_finding_labels, read_cxr14
from training.protocols.datasets import DatasetLayoutError


def test_finding_labels_parse_pipes_and_no_finding() -> None:
    labels = parse_finding_labels("Effusion|Pleural_Thickening")
    assert {name for name, value in labels.items() if value} == {"Effusion", "Pleural_Thickening"}
    assert sum(parse_finding_labels("No Finding").values()) == 0
    assert tuple(labels) == CLASSES
    with pytest.raises(DatasetLayoutError, match="Lung Opacity"):
        parse_finding_labels("Lung Opacity")


@pytest.mark.shared_data
def test_official_layout_reads_labels_split_and_boxes_of_real_films(shared_data: Path,
                                                                    tmp_path: Path) -> None:
    tree = write_cxr14_tree(shared_data, tmp_path / "cxr14")
    data = read_cxr14(tree.root)
    assert data.layout.startswith("official")
    by_stem = {Path(record.image).stem: record for record in data.records}
    assert set(by_stem) == set(tree.labels)
    for stem, record in by_stem.items():
        assert record.labels == tree.labels[stem]
        assert (record.split == "test") == (stem in tree.test)
        assert record.split in {"train", "val", "test"}
    boxed = {stem: record.boxes for stem, record in by_stem.items() if record.boxes}
    assert set(boxed) == set(tree.boxes) and len(boxed) == 23
    for stem, boxes in boxed.items():
        expected = sorted(tree.boxes[stem])
        found = sorted((b.label, b.x, b.y, b.w, b.h) for b in boxes)
        # the release's 1024 grid rescaled to the 512 px file gives back the shared subset's pixels
        assert [f[0] for f in found] == [e[0] for e in expected]
        for got, want in zip(found, expected, strict=True):
            assert got[1:] == pytest.approx(want[1:], abs=1e-6)


@pytest.mark.shared_data
def test_missing_images_are_counted_not_fatal(shared_data: Path, tmp_path: Path) -> None:
    tree = write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=4)
    removed = sorted((tree.root / "images").iterdir())[:3]
    for path in removed:
        path.unlink()
    data = read_cxr14(tree.root)
    assert data.skipped == {"image file not found": 3}
    assert len(data.records) == len(tree.labels) - 3


@pytest.mark.shared_data
def test_shared_manifest_is_read_through_the_nih_reader(shared_data: Path) -> None:
    data = read_cxr14(shared_data / "nih-cxr14")
    assert data.layout.startswith("shared manifest") and data.ground_all_splits
    counts = data.counts()
    assert counts["test"] == 250 and counts["train"] + counts["val"] == 1015  # the manifest's val / train
    assert all(set(record.labels or {}) == set(CLASSES) for record in data.records)
    assert sum(len(record.boxes) for record in data.records) == 23
    patients: dict[str, set[str]] = {}
    for record in data.records:
        patients.setdefault(Path(record.image).stem.split("_")[0], set()).add(record.split)
    assert all(len(splits) == 1 for splits in patients.values())  # one patient, one split


def test_a_folder_without_either_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"Data_Entry_2017\.csv"):
        read_cxr14(tmp_path)


@pytest.mark.shared_data
def test_paper_split_files_replace_the_official_lists(shared_data: Path, tmp_path: Path) -> None:
    tree = write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=4)
    chosen = sorted(tree.labels)[:5]
    (tree.root / "splits").mkdir()
    (tree.root / "splits" / "test.csv").write_text(
        "path,Atelectasis\n" + "".join(f"/data/images/{stem}.png,0\n" for stem in chosen), encoding="utf-8")
    data = read_cxr14(tree.root)
    assert sorted(Path(r.image).stem for r in data.records) == chosen
    assert {r.split for r in data.records} == {"test"}
    assert data.skipped == {"not in the split files": len(tree.labels) - 5}
    assert data.split_note.startswith("split files in splits/")
