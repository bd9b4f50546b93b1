"""SR / SEG / heatmap builders: right study, right values, deterministic UIDs, dciodvfy clean."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.bridge.results import build_results
from app.bridge.results.codes import finding_code
from app.bridge.results.sr import best_anatomy
from app.contract.http import AnatomyScore
from tests.support.bridge.dciodvfy import (
    coding_warnings,
    dciodvfy_errors,
    dciodvfy_lines,
    private_scheme_uses,
)
from tests.support.bridge.fakes import (
    FINDINGS,
    MODEL,
    STRUCTURES,
    UNCALIBRATED,
    fake_inference,
    make_chest_dicom,
)
from tests.support.bridge.sr_values import (
    by_code,
    expected_site,
    sr_finding_sites,
    sr_presence,
    sr_probabilities,
)


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
    assert sr_probabilities(sr) == pytest.approx(by_code({name: score for name, score, _ in FINDINGS}))
    assert ("SCT", "60046008") in sr_probabilities(sr)  # effusion found by its SNOMED CT code
    text = str(sr)
    assert MODEL["name"] in text and MODEL["version"] in text  # algorithm identification


def test_sr_states_present_or_absent_only_where_the_threshold_was_validated() -> None:
    sr = build_results(_source(), fake_inference(64, 64), "test", max_heatmaps=0)[0].dataset
    expected = {name: "Present" if positive else "Absent" for name, _, positive in FINDINGS
                if name not in UNCALIBRATED}
    assert sr_presence(sr) == {k: expected[name] for name, k in _keys().items() if name in expected}
    assert set(sr_probabilities(sr)) == set(_keys().values())  # every score is still reported


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


def _keys() -> dict[str, tuple[str, str]]:
    return {name: next(iter(by_code({name: 0.0}))) for name, _, _ in FINDINGS}


def test_best_anatomy_picks_highest_score() -> None:
    [finding, *_] = fake_inference(8, 8).ground.findings  # type: ignore[union-attr]
    finding.anatomy = [AnatomyScore(name="a", score=0.2), AnatomyScore(name="b", score=0.9)]
    assert best_anatomy(finding) == "b"
    finding.anatomy = []
    assert best_anatomy(finding) is None


@pytest.mark.parametrize("kind_index", [0, 1, 2])
def test_builders_are_dciodvfy_clean(kind_index: int, tmp_path: Path) -> None:
    source = _source()
    obj = build_results(source, fake_inference(64, 64), "test", max_heatmaps=1)[kind_index]
    lines = dciodvfy_lines(obj.dataset, tmp_path)
    assert [line for line in lines if line.startswith("Error")] == []
    assert [line for line in lines if "Laterality" in line] == []


def test_builders_on_real_chest_dicoms_are_dciodvfy_clean(shared_data: Path, tmp_path: Path) -> None:
    source = pydicom.dcmread(shared_data / "dicom" / "siim_chest_jpeg_baseline.dcm")
    objects = build_results(source, fake_inference(int(source.Columns), int(source.Rows)), "test", 1)
    for obj in objects:
        assert dciodvfy_errors(obj.dataset, tmp_path) == [], obj.kind
    assert np.asarray(objects[-1].dataset.pixel_array).shape == (source.Rows, source.Columns, 3)


def test_each_grounded_finding_gets_its_site_and_heatmaps_follow_the_scores() -> None:
    inference = fake_inference(64, 64)
    assert inference.ground is not None
    inference.ground.findings.reverse()  # service order must not decide which overlays are made
    objects = build_results(_source(), inference, "test", max_heatmaps=1)
    [heatmap] = [o.dataset for o in objects if o.kind == "heatmap"]
    assert "effusion" in heatmap.ImageComments  # 0.81 beats atelectasis's 0.34
    grounded = by_code({f.name: 0.0 for f in inference.ground.findings})
    # best anatomy "lower_right_lobe": SNOMED CT lower lobe of lung, laterality right
    assert sr_finding_sites(objects[0].dataset) == dict.fromkeys(grounded, expected_site("lower_right_lobe"))
    assert expected_site("lower_right_lobe") == (("SCT", "90572001"), ("SCT", "24028007"))


def test_every_result_references_its_source_image() -> None:
    source = _source()
    objects = {o.kind: o.dataset for o in build_results(source, fake_inference(64, 64), "test", 1)}
    wanted = (source.SOPClassUID, source.SOPInstanceUID)
    evidence = objects["sr"].CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    item = evidence.ReferencedSOPSequence[0]
    assert (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) == wanted
    for ref in (objects["seg"].SourceImageSequence[0], objects["heatmap"].SourceImageSequence[0],
                objects["heatmap"].ReferencedImageSequence[0]):
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == wanted
    assert objects["heatmap"].SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    assert "Laterality" not in objects["heatmap"]  # unpaired body part: absent, never empty


def test_patient_and_study_modules_are_copied_in_full() -> None:
    source = _source()
    source.OtherPatientIDs = "OTHER-42"
    source.PatientAge = "054Y"
    source.PatientWeight = "71.5"
    source.StudyDescription = "CHEST PA"
    source.IssuerOfPatientID = "HOSPITAL-A"
    for obj in build_results(source, fake_inference(64, 64), "test", max_heatmaps=1):
        for keyword in ("OtherPatientIDs", "PatientAge", "PatientWeight", "StudyDescription",
                        "IssuerOfPatientID", "PatientBirthDate", "AccessionNumber"):
            assert obj.dataset[keyword].value == source[keyword].value, (obj.kind, keyword)


def test_segments_are_snomed_coded_with_laterality() -> None:
    seg = build_results(_source(), fake_inference(64, 64), "test", max_heatmaps=0)[1].dataset
    coded = {}
    for segment in seg.SegmentSequence:
        prop = segment.SegmentedPropertyTypeCodeSequence[0]
        modifier = prop.get("SegmentedPropertyTypeModifierCodeSequence")
        coded[segment.SegmentLabel] = (prop.CodeValue, modifier[0].CodeMeaning if modifier else None)
    assert coded == {
        "right_lung": ("39607008", "Right"), "left_lung": ("39607008", "Left"), "heart": ("80891009", None),
        "right_clavicle": ("51299004", "Right"), "left_clavicle": ("51299004", "Left"),
    }


def test_sr_of_standard_coded_findings_has_no_coding_warnings(tmp_path: Path) -> None:
    inference = fake_inference(64, 64)
    assert inference.ground is not None
    inference.classify.findings = [f for f in inference.classify.findings if f.name != "atelectasis"]
    inference.ground.findings = [f for f in inference.ground.findings if f.name != "atelectasis"]
    sr = build_results(_source(), inference, "test", max_heatmaps=0)[0].dataset
    assert "CodingSchemeIdentificationSequence" not in sr  # nothing private to declare
    assert coding_warnings(dciodvfy_lines(sr, tmp_path)) == []


def test_private_codes_are_declared_and_the_only_coding_warnings(tmp_path: Path) -> None:
    """atelectasis has no code verifiable offline: private, declared; dciodvfy (2022) still names it."""
    sr = build_results(_source(), fake_inference(64, 64), "test", max_heatmaps=0)[0].dataset
    [declared] = sr.CodingSchemeIdentificationSequence
    assert declared.CodingSchemeDesignator == "99MEDSLIP"
    assert ("99MEDSLIP", finding_code("atelectasis").value) in sr_probabilities(sr)
    warnings = coding_warnings(dciodvfy_lines(sr, tmp_path))
    assert warnings and all("<99MEDSLIP>" in line for line in warnings)
    assert len(warnings) == private_scheme_uses(sr) == 3  # atelectasis: finding, evaluation; declaration
