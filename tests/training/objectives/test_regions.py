"""Anatomical regions from masks and boxes, and sentences linked to them through the report parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.contract.vocabulary import ANATOMY
from training.data.manifest import Box, ManifestRecord
from training.objectives.regions import (
    ANATOMY_REGIONS,
    REGIONS,
    mask_boxes,
    region_links,
    region_masks,
    sentence_regions,
    zone_masks,
)


def test_anatomy_table_names_parser_anatomies_and_region_slots() -> None:
    assert set(ANATOMY_REGIONS) <= set(ANATOMY)
    assert {region for regions in ANATOMY_REGIONS.values() for region in regions} <= set(REGIONS)


@pytest.mark.parametrize(
    ("sentence", "regions"),
    [
        ("Left lower lobe consolidation.", {"left_lower_zone"}),
        ("Opacity in the right mid lung zone.", {"right_middle_zone"}),
        ("The heart is enlarged.", {"heart"}),
        ("The lungs are clear.", {"right_lung", "left_lung"}),
        ("Small left pleural effusion.", {"left_lung"}),
        ("Bilateral upper lobe infiltrates.", {"right_upper_zone", "left_upper_zone"}),
        ("No pneumothorax.", set()),  # no anatomy attached: no region
    ],
)
def test_sentences_link_to_the_regions_they_name(sentence: str, regions: set[str]) -> None:
    assert sentence_regions(sentence) == regions


def test_region_links_are_per_sentence() -> None:
    links = region_links(["The heart is enlarged.", "Retrocardiac opacity."])  # (R, 2)
    assert links.shape == (len(REGIONS), 2)
    assert links[:, 0].nonzero()[0].tolist() == [REGIONS.index("heart")]
    assert links[:, 1].nonzero()[0].tolist() == [REGIONS.index("left_lower_zone")]


def test_zones_are_the_lung_in_thirds_of_its_box() -> None:
    lung = np.zeros((60, 40), dtype=np.float32)
    lung[10:40, 5:20] = 1.0
    upper, middle, lower = zone_masks(lung)
    assert [np.flatnonzero(z.any(axis=1)).tolist() for z in (upper, middle, lower)] == [
        list(range(10, 20)), list(range(20, 30)), list(range(30, 40))
    ]
    assert np.array_equal(upper + middle + lower, lung)
    assert all(not zone.any() for zone in zone_masks(np.zeros((8, 8), dtype=np.float32)))


def _save(path: Path, mask: np.ndarray) -> str:
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)
    return str(path)


def test_regions_from_a_both_lungs_mask_are_split_by_side(tmp_path: Path) -> None:
    union = np.zeros((64, 64), dtype=np.float32)
    union[8:56, 6:26] = 1.0  # image left: the patient's right lung
    union[12:52, 38:60] = 1.0
    record = ManifestRecord(image="x.png", split="train", source="unit",
                            masks={"lungs": _save(tmp_path / "lungs.png", union)})
    masks, valid = region_masks(record, (64, 64))
    assert masks.shape == (len(REGIONS), 64, 64)
    assert [name for name, ok in zip(REGIONS, valid, strict=True) if ok] == list(REGIONS[:8])
    boxes, present = mask_boxes(masks)
    assert boxes[REGIONS.index("right_lung")].tolist() == [6, 8, 26, 56]
    assert boxes[REGIONS.index("left_lower_zone")].tolist() == [38, 39, 60, 52]
    assert not present[REGIONS.index("heart")] and boxes[REGIONS.index("heart")].tolist() == [0, 0, 0, 0]


def test_regions_fall_back_to_lung_boxes() -> None:
    record = ManifestRecord(
        image="x.png", split="train", source="unit",
        boxes=[Box("Right Lung", 4, 10, 20, 30), Box("Left Lung", 34, 12, 22, 27)],
    )
    masks, valid = region_masks(record, (48, 64))
    assert valid[:8].all() and not valid[8:].any()
    boxes, _ = mask_boxes(masks)
    assert boxes[REGIONS.index("left_lung")].tolist() == [34, 12, 56, 39]
    assert boxes[REGIONS.index("right_upper_zone")].tolist() == [4, 10, 24, 20]
