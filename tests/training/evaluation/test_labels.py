"""What evaluation scores against: label mapping, lung regions and the chest region of heat maps."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from training.data.manifest import Box, ManifestRecord
from training.data.sources import read_jsrt_scr
from training.evaluation.labels import (
    chest_region,
    covid_labels,
    evaluation_labels,
    load_mask,
    load_masks,
    lung_regions,
)
from training.model.grounding import PRIOR_STRUCTURES


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


def test_the_chest_region_is_the_expert_lungs_and_heart_grown_by_one_token(shared_data: Path) -> None:
    record = read_jsrt_scr(shared_data / "jsrt-scr")[0]
    shape = (512, 512)  # the shared JSRT films and masks
    region = chest_region(load_masks(record, shape), PRIOR_STRUCTURES, grid=16)  # one token = 32 px
    assert region is not None
    union = np.zeros(shape, dtype=bool)
    for name in PRIOR_STRUCTURES:
        mask = load_mask((record.masks or {})[name], shape)
        assert mask is not None
        union |= mask
    assert bool(region[union].all()) and region.sum() > union.sum()
    rows = np.flatnonzero(union.any(axis=1))
    grown_rows = np.flatnonzero(region.any(axis=1))
    expected = (min(32, int(rows[0])), min(32, 511 - int(rows[-1])))  # clipped at the film's edges
    assert (rows[0] - grown_rows[0], grown_rows[-1] - rows[-1]) == expected
    no_heart = dataclasses.replace(record, masks={"right_lung": (record.masks or {})["right_lung"]})
    assert chest_region(load_masks(no_heart, shape), PRIOR_STRUCTURES, grid=16) is None
