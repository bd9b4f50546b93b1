"""Maps back to original pixels, boxes, peaks, COCO RLE and anatomy localisation."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract.imaging import preprocess
from app.postprocess import (
    anatomy_localisation,
    box_from_mask,
    coco_rle,
    finding_mask,
    grounding,
    normalise,
    peak,
)
from tests.support.rle import decode_coco_rle


def test_coco_rle_round_trip_and_layout() -> None:
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 0] = True
    mask[1:3, 2] = True
    rle = coco_rle(mask)
    assert rle["size"] == [3, 4]
    assert rle["counts"] == [0, 1, 6, 2, 3]  # column-major, starts with a (here empty) run of zeros
    assert np.array_equal(decode_coco_rle(rle), mask)
    assert coco_rle(np.zeros((2, 2), bool))["counts"] == [4]


def test_box_and_peak() -> None:
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:5, 7:11] = True
    assert box_from_mask(mask) == [7, 2, 11, 5]
    assert box_from_mask(np.zeros((4, 4), bool)) is None
    heat = np.zeros((10, 20))
    heat[6, 13] = 1.0
    assert peak(heat) == {"x": 13, "y": 6}


def test_grounding_lands_in_original_pixels_of_a_wide_image() -> None:
    """A hot cell in the model frame maps to the matching place of a 100 x 300 original (pad removed)."""
    _, box = preprocess(np.zeros((100, 300), np.float32), size=64)
    grid = np.zeros((8, 8), np.float32)  # (G, G) covering the 64 x 64 canvas
    grid[4, 6] = 1.0  # right part of the content band
    anatomy = np.stack([grid, np.roll(grid, 3, axis=1)])  # (2, G, G): first overlaps, second does not
    result = grounding(
        grid,
        box,
        anatomy_maps=anatomy,
        anatomy_probs=np.array([0.9, 0.9]),
        anatomy_names=("right_thing", "elsewhere"),
        top_k=2,
    )
    assert (result["heatmap"]["width"], result["heatmap"]["height"]) == (300, 100)
    assert 200 < result["peak"]["x"] < 270
    assert [a["name"] for a in result["anatomy"]] == ["right_thing", "elsewhere"]
    assert result["anatomy"][0]["score"] > result["anatomy"][1]["score"]
    assert finding_mask(grid, box).shape == (100, 300)


def test_anatomy_weighted_by_probability() -> None:
    finding = np.ones((4, 4), np.float32)
    maps = np.ones((3, 4, 4), np.float32)
    ranked = anatomy_localisation(finding, maps, np.array([0.1, 0.8, 0.5]), ("a", "b", "c"), top_k=2)
    assert [r["name"] for r in ranked] == ["b", "c"]
    assert anatomy_localisation(np.zeros((4, 4)), maps, np.ones(3), ("a", "b", "c"), 3) == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalise_scales_to_the_maps_own_range_without_touching_it(dtype: type) -> None:
    heat = (np.random.default_rng(3).random((30, 40)) * 5 - 1).astype(dtype)
    before = heat.copy()
    low, high = float(heat.min()), float(heat.max())
    got = normalise(heat)
    assert got.dtype == np.float32 and np.array_equal(got, ((heat - low) / (high - low)).astype(np.float32))
    assert np.array_equal(heat, before)
    assert not normalise(np.full((3, 3), 2.0, np.float32)).any()
