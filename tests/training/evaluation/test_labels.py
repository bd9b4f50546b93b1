"""What evaluation scores against: label mapping and lung regions."""

import pytest

from training.data.manifest import Box, ManifestRecord
from training.evaluation.labels import covid_labels, evaluation_labels, lung_regions


@pytest.mark.parametrize(
    ("finding", "expected"),
    [
        ("no finding", {"normal": 1, "pneumonia": 0}),
        ("covid-19", {"normal": 0, "pneumonia": 1}),
        ("covid-19, ards", {"normal": 0, "pneumonia": 1}),
        ("streptococcus", {"normal": 0, "pneumonia": 1}),
        ("ards", {}),
    ],
)
def test_covid_findings_map_to_normal_or_pneumonia(finding: str, expected: dict[str, int]) -> None:
    assert covid_labels({finding: 1}) == expected


def test_labels_outside_the_pathology_vocabulary_are_ignored() -> None:
    record = ManifestRecord(image="x.png", split="val", source="jsrt-scr", labels={"nodule": 1, "zebra": 0})
    assert evaluation_labels(record) == {"nodule": 1}


def test_lung_boxes_become_regions_of_the_matching_anatomy_query() -> None:
    record = ManifestRecord(image="x.png", split="val", source="covid-chestxray",
                            boxes=[Box("Right Lung", 1, 1, 2, 3), Box("Heart", 0, 0, 1, 1)])
    regions = lung_regions(record, (6, 6))
    assert list(regions) == ["right_lung_unspec"]
    kind, mask = regions["right_lung_unspec"]
    assert kind == "box (covid-chestxray)" and mask.sum() == 6
