"""Readers on the real shared data (counts from each set's README/manifest) and a synthetic MIMIC tree."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.support.iu_reports import read_iu_reports
from training.data.sources import (
    JSRT_STRUCTURES,
    read_covid_chestxray,
    read_jsrt_scr,
    read_kermany_pediatric,
    read_mimic_cxr,
)
from training.data.sources.mimic import report_sections
from training.reports.templates import jsrt_report


@pytest.mark.shared_data
def test_covid_counts_views_masks_and_boxes(shared_data: Path) -> None:
    everything = read_covid_chestxray(shared_data / "covid-chestxray")
    assert len(everything) == 575
    assert Counter(r.view for r in everything)["L"] == 44
    frontal = read_covid_chestxray(shared_data / "covid-chestxray", frontal_only=True)
    assert len(frontal) == 531 and all(r.view in {"PA", "AP", "AP Supine"} for r in frontal)
    assert Counter(r.split for r in frontal) == {"train": 439, "val": 92}
    assert sum(r.report is not None for r in frontal) == 420
    assert sum(r.masks is not None for r in everything) == 451
    boxed = [r for r in everything if r.boxes]
    assert len(boxed) == 155
    assert {b.label for b in boxed[0].boxes} == {"Right Lung", "Left Lung"}
    assert all(Path(r.image).is_file() for r in frontal[:20])


@pytest.mark.shared_data
def test_kermany_labels_reports_and_hash_split(shared_data: Path) -> None:
    records = read_kermany_pediatric(shared_data / "kermany-pediatric")
    assert len(records) == 720
    assert sum(r.labels is not None and r.labels["pneumonia"] == 1 for r in records) == 480
    assert all(r.labels is not None and r.labels["normal"] + r.labels["pneumonia"] == 1 for r in records)
    split = Counter(r.split for r in records)
    assert split == {"train": 585, "val": 135}  # SHA-256 of the file name, 80/20
    assert all(r.report for r in records)
    assert read_kermany_pediatric(shared_data / "kermany-pediatric") == records  # deterministic


@pytest.mark.shared_data
def test_jsrt_has_five_masks_and_nodule_labels(shared_data: Path) -> None:
    records = read_jsrt_scr(shared_data / "jsrt-scr")
    assert len(records) == 145
    assert sum(r.labels is not None and r.labels["nodule"] for r in records) == 90
    assert Counter(r.split for r in records) == {"train": 113, "val": 32}
    first = records[0]
    assert first.masks is not None and tuple(first.masks) == JSRT_STRUCTURES
    assert all(Path(p).is_file() for p in first.masks.values())
    # Each film carries its label's report, so adult films join pretraining with the right text.
    assert all(r.report == jsrt_report(r.labels["nodule"]) for r in records if r.labels is not None)


@pytest.mark.shared_data
def test_iu_reports_are_text_only(shared_data: Path) -> None:
    reports = read_iu_reports(shared_data / "iu-reports")
    assert len(reports) == 2366
    assert reports[0].report_id == "CXR1" and "pneumothorax" in reports[0].text
    assert reports[0].mesh_major == ("normal",)


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_mimic_reader_on_a_synthetic_tree(tmp_path: Path) -> None:
    study = tmp_path / "files" / "p10" / "p10000032" / "s50414267"
    _write(study / "img-pa.jpg")
    _write(study / "img-lat.jpg")
    _write(
        study.with_suffix(".txt"),
        "EXAMINATION: CHEST\nINDICATION: cough\nFINDINGS: Small left effusion.\nIMPRESSION: Effusion.\n",
    )
    other = tmp_path / "files" / "p11" / "p11000011" / "s51111111"
    _write(other / "img-ap.dcm")
    _write(other.with_suffix(".txt"), "Lungs are clear.")
    _write(
        tmp_path / "mimic-cxr-2.0.0-split.csv",
        "dicom_id,study_id,subject_id,split\n"
        "img-pa,50414267,10000032,train\nimg-lat,50414267,10000032,train\n"
        "img-ap,51111111,11000011,validate\nimg-missing,51111111,11000011,test\n",
    )
    _write(
        tmp_path / "mimic-cxr-2.0.0-metadata.csv",
        "dicom_id,ViewPosition\nimg-pa,PA\nimg-lat,LATERAL\nimg-ap,AP\nimg-missing,PA\n",
    )
    records = read_mimic_cxr(tmp_path)
    assert [(Path(r.image).name, r.split, r.view) for r in records] == [
        ("img-pa.jpg", "train", "PA"),
        ("img-ap.dcm", "val", "AP"),
    ]
    assert records[0].report == "Small left effusion. Effusion."
    assert records[1].report == "Lungs are clear."
    assert len(read_mimic_cxr(tmp_path, frontal_only=False)) == 3


def test_report_sections_keeps_findings_and_impression_only() -> None:
    text = (
        "INDICATION: fever\nFINDINGS:\n  No  focal consolidation.\nIMPRESSION: Normal.\nRECOMMENDATION: none"
    )
    assert report_sections(text) == "No focal consolidation. Normal."
