"""MeSH tag mapping and the counting rule of the scorer."""

import pytest

from training.reports import parse_report
from training.reports.mesh import build_mesh_map, default_mesh_map, reference_labels
from training.reports.scoring import Counts, f1_score, format_score, score_reports


def test_tags_map_by_modifier_then_head() -> None:
    mesh = default_mesh_map()
    assert mesh.label_of("Cardiac Shadow/enlarged/borderline") == (True, "cardiomegaly")
    assert mesh.label_of("Cardiac Shadow/borderline") == (True, None)  # explicitly not scored
    assert mesh.label_of("Lung/hypoinflation/mild") == (True, "low")
    assert mesh.label_of("Calcified Granuloma/lung/upper lobe/right") == (True, "calcification")
    assert mesh.label_of("Mastectomy/left") == (False, None)


def test_reference_counts_unmapped_and_ignored_tags() -> None:
    reference = reference_labels(["Opacity/lung/base/left", "Mastectomy", "Diaphragm/flattened"],
                                 default_mesh_map())
    assert reference.labels == frozenset({"opacity"})
    assert reference.unmapped == ("Mastectomy",)
    assert reference.ignored == ("Diaphragm/flattened",)
    assert not reference.is_normal
    assert reference_labels(["normal"], default_mesh_map()).is_normal


def test_map_validation_rejects_unknown_entities_and_labels() -> None:
    with pytest.raises(ValueError, match="unknown entities"):
        build_mesh_map({"labels": {"x": ["not_an_entity"]}, "terms": {}, "unscored_reports": []})
    with pytest.raises(ValueError, match="unknown labels"):
        build_mesh_map({"labels": {"x": ["effusion"]}, "terms": {"Pleural Effusion": "y"},
                        "unscored_reports": []})


def test_counts_and_f1() -> None:
    counts = Counts()
    for predicted, actual in [(True, True), (True, False), (False, True), (False, False)]:
        counts.add(predicted, actual)
    assert (counts.tp, counts.fp, counts.fn, counts.support) == (1, 1, 1, 2)
    assert counts.precision == 0.5 and counts.recall == 0.5 and counts.f1 == 0.5
    assert f1_score(0, 0, 0) == 0.0


def test_score_counts_per_report_and_normal_at_report_level() -> None:
    records = [
        {"findings": "Small right pleural effusion.", "impression": "",
         "mesh_major": ["Pleural Effusion/right"]},
        {"findings": "The lungs are clear. No effusion.", "impression": "Normal chest.",
         "mesh_major": ["normal"]},
        {"findings": "Mild cardiomegaly.", "impression": "", "mesh_major": ["Pleural Effusion"]},
        {"findings": "Clear lungs.", "impression": "", "mesh_major": ["No Indexing"]},
    ]
    score = score_reports(records, parse_report, default_mesh_map())
    assert score.n_reports == 3 and score.n_unscored_reports == 1
    effusion = score.per_label["effusion"]
    assert (effusion.tp, effusion.fp, effusion.fn) == (1, 0, 1)
    cardiomegaly = score.per_label["cardiomegaly"]
    assert (cardiomegaly.tp, cardiomegaly.fp, cardiomegaly.fn) == (0, 1, 0)
    normal = score.per_label["normal"]
    assert (normal.tp, normal.fp, normal.fn) == (1, 0, 0)
    micro = score.micro()
    assert (micro.tp, micro.fp, micro.fn) == (2, 1, 1)
    last_line = format_score(score).splitlines()[-1]
    assert last_line.startswith("micro-F1: 0.667 (n_reports=3,")
