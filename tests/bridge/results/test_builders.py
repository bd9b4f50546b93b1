"""SR / SEG / heatmap builders: right study, right values, deterministic UIDs, dciodvfy clean."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.bridge.results import build_results
from app.bridge.results.sr import best_anatomy
from tests.bridge.dciodvfy import dciodvfy_errors
from tests.bridge.fakes import FINDINGS, MODEL, STRUCTURES, UNCALIBRATED, fake_inference, make_chest_dicom
from tests.bridge.sr_values import sr_finding_sites, sr_presence, sr_probabilities


def _source(**kwargs: object) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(make_chest_dicom(**kwargs)))  # type: ignore[arg-type]


def test_results_live_in_the_source_study_with_new_series() -> None:
    source = _source(rows=48, columns=40)
    objects = build_results(source, fake_inference(40, 48), "test", max_heatmaps=2)
    assert [o.kind for o in objects] == ["sr", "seg", "heatmap", "heatmap"]
    for obj in objects:
        assert obj.dataset.StudyInstanceUID == source.StudyInstanceUID
        assert obj.dataset.SeriesInstanceUID != source.SeriesInstanceUID
        assert obj.dataset.PatientID == source.PatientID
        assert str(obj.dataset.PatientName) == str(source.PatientName)
    assert len({o.dataset.SeriesInstanceUID for o in objects}) == 3  # one series per kind


def test_sr_carries_the_service_scores_and_finding_sites() -> None:
    source = _source()
    sr = build_results(source, fake_inference(64, 64), "test", max_heatmaps=0)[0].dataset
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr_probabilities(sr) == pytest.approx({name: score for name, score, _ in FINDINGS})
    text = str(sr)
    assert "right lower lobe" in text  # best anatomy of the grounded findings is the finding site
    assert MODEL["name"] in text and MODEL["version"] in text  # algorithm identification


def test_sr_states_present_or_absent_only_where_the_threshold_was_validated() -> None:
    sr = build_results(_source(), fake_inference(64, 64), "test", max_heatmaps=0)[0].dataset
    expected = {name: "Present" if positive else "Absent" for name, _, positive in FINDINGS
                if name not in UNCALIBRATED}
    assert sr_presence(sr) == expected
    assert set(sr_probabilities(sr)) == {name for name, _, _ in FINDINGS}  # every score is still reported


def test_seg_has_one_binary_segment_per_mask_on_the_source_grid() -> None:
    source = _source(rows=48, columns=40)
    inference = fake_inference(20, 24)  # the service may answer at another size: resized to the source
    seg = build_results(source, inference, "test", max_heatmaps=0)[1].dataset
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == STRUCTURES
    assert seg.SegmentSequence[0].SegmentAlgorithmName == MODEL["name"]
    frames = seg.pixel_array  # (K, rows, cols)
    assert frames.shape == (len(STRUCTURES), 48, 40)
    assert 0 < frames[0].mean() < 1


def test_heatmap_is_an_rgb_overlay_labelled_ai_generated() -> None:
    source = _source()
    heatmap = build_results(source, fake_inference(64, 64), "test", max_heatmaps=1)[-1].dataset
    assert heatmap.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert heatmap.PhotometricInterpretation == "RGB"
    assert heatmap.BurnedInAnnotation == "YES"
    assert "AI-GENERATED" in heatmap.ImageComments
    assert "AI" in heatmap.SeriesDescription
    rgb = heatmap.pixel_array.astype(int)  # (rows, cols, 3)
    red_excess = rgb[..., 0] - rgb[..., 2]
    assert (
        red_excess[38, 19] > 20 >= red_excess[30, 60]
    )  # hot at the fake blob (x=0.3 W, y=0.6 H), not far away


def test_rebuilding_gives_the_same_uids() -> None:
    """Re-sending after a crash must overwrite, not duplicate, in the PACS."""
    source = _source()
    first = build_results(source, fake_inference(64, 64), "test", max_heatmaps=2)
    again = build_results(source, fake_inference(64, 64), "test", max_heatmaps=2)
    assert [o.dataset.SOPInstanceUID for o in first] == [o.dataset.SOPInstanceUID for o in again]
    other = build_results(_source(study_uid=source.StudyInstanceUID), fake_inference(64, 64), "t", 2)
    assert first[0].dataset.SOPInstanceUID != other[0].dataset.SOPInstanceUID
    assert (
        first[0].dataset.SeriesInstanceUID == other[0].dataset.SeriesInstanceUID
    )  # same study -> same series


def test_best_anatomy_picks_highest_score() -> None:
    finding = {"anatomy": [{"name": "a", "score": 0.2}, {"name": "b", "score": 0.9}]}
    assert best_anatomy(finding) == "b"
    assert best_anatomy({"anatomy": []}) is None


@pytest.mark.parametrize("kind_index", [0, 1, 2])
def test_builders_are_dciodvfy_clean(kind_index: int, tmp_path: Path) -> None:
    source = _source()
    obj = build_results(source, fake_inference(64, 64), "test", max_heatmaps=1)[kind_index]
    assert dciodvfy_errors(obj.dataset, tmp_path) == []


def test_builders_on_real_chest_dicoms_are_dciodvfy_clean(shared_data: Path, tmp_path: Path) -> None:
    source = pydicom.dcmread(shared_data / "dicom" / "siim_chest_jpeg_baseline.dcm")
    objects = build_results(source, fake_inference(int(source.Columns), int(source.Rows)), "test", 1)
    for obj in objects:
        assert dciodvfy_errors(obj.dataset, tmp_path) == [], obj.kind
    assert np.asarray(objects[-1].dataset.pixel_array).shape == (source.Rows, source.Columns, 3)


def test_each_grounded_finding_gets_its_site_and_heatmaps_follow_the_scores() -> None:
    inference = fake_inference(64, 64)
    inference["ground"]["findings"].reverse()  # service order must not decide which overlays are made
    objects = build_results(_source(), inference, "test", max_heatmaps=1)
    [heatmap] = [o.dataset for o in objects if o.kind == "heatmap"]
    assert "effusion" in heatmap.ImageComments  # 0.81 beats pneumonia's 0.34
    grounded = {f["name"] for f in inference["ground"]["findings"]}
    assert sr_finding_sites(objects[0].dataset) == dict.fromkeys(grounded, "right lower lobe")
