"""Grounding metrics against hand-computed tiny maps."""

import math

import numpy as np
import pytest

from training.metrics.grounding import (
    box_to_mask,
    contrast_to_noise,
    grounding_scores,
    heat_outside_share,
    iou_dice_over_thresholds,
    minmax_normalise,
    pointing_game,
)


def _region() -> np.ndarray:
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    return mask


def test_pointing_game_hits_when_the_peak_is_inside_and_misses_otherwise() -> None:
    hit_map = np.zeros((4, 4))
    hit_map[1, 1] = 5.0
    miss_map = np.zeros((4, 4))
    miss_map[3, 3] = 5.0
    assert pointing_game(hit_map, _region())
    assert not pointing_game(miss_map, _region())


def test_minmax_normalise_is_scale_and_offset_invariant_and_constant_maps_become_zero() -> None:
    base = np.array([[0.0, 1.0], [2.0, 4.0]])
    np.testing.assert_allclose(minmax_normalise(base * 3 - 7), base / 4)
    assert not minmax_normalise(np.full((3, 3), 2.5)).any()


def test_iou_and_dice_are_averaged_over_thresholds_of_the_normalised_map() -> None:
    # Normalised values: region pixels 1.0 except one at 0.25; outside pixels 0 except one at 0.35.
    map_ = np.zeros((4, 4))
    map_[:2, :2] = 1.0
    map_[1, 1] = 0.25
    map_[3, 3] = 0.35
    # t=0.1, 0.2: P = region(4) + outlier -> I=4, U=5, IoU 0.8, Dice 8/9
    # t=0.3:      P = 3 region + outlier  -> I=3, U=5, IoU 0.6, Dice 6/8
    # t=0.4, 0.5: P = 3 region            -> I=3, U=4, IoU 0.75, Dice 6/7
    expected_iou = (0.8 + 0.8 + 0.6 + 0.75 + 0.75) / 5
    expected_dice = (8 / 9 + 8 / 9 + 6 / 8 + 6 / 7 + 6 / 7) / 5
    iou_value, dice_value = iou_dice_over_thresholds(map_, _region())
    assert iou_value == pytest.approx(expected_iou)
    assert dice_value == pytest.approx(expected_dice)


def test_a_map_positive_everywhere_is_not_rewarded_like_the_threshold_zero_convention() -> None:
    # All-positive map with a peak outside the region: thresholding raw values at 0 would call every
    # pixel positive; the normalised map only keeps the peak, which misses the region entirely.
    map_ = np.full((4, 4), 0.5)
    map_[3, 3] = 1.0
    iou_value, dice_value = iou_dice_over_thresholds(map_, _region())
    assert iou_value == 0.0 and dice_value == 0.0


def test_cnr_matches_its_formula() -> None:
    map_ = np.array([[1.0, 0.8], [0.2, 0.0]])
    mask = np.array([[True, True], [False, False]])
    inside, outside = np.array([1.0, 0.8]), np.array([0.2, 0.0])
    expected = abs(inside.mean() - outside.mean()) / math.sqrt(inside.var() + outside.var())
    assert contrast_to_noise(map_, mask) == pytest.approx(expected)


def test_cnr_is_nan_for_an_empty_region() -> None:
    assert math.isnan(contrast_to_noise(np.random.default_rng(0).random((3, 3)), np.zeros((3, 3))))


def test_box_to_mask_covers_the_box_and_clips_to_the_image() -> None:
    mask = box_to_mask((1.0, 2.0, 2.0, 10.0), (4, 5))
    assert mask.sum() == 2 * 2
    assert mask[2:4, 1:3].all()


def test_grounding_scores_bundle_every_figure_and_reject_mismatched_grids() -> None:
    map_ = np.zeros((4, 4))
    map_[:2, :2] = 1.0
    scores = grounding_scores(map_, _region())
    assert scores.pointing_hit and scores.iou == 1.0 and scores.dice == 1.0
    assert math.isnan(scores.cnr)  # both sides constant: no noise to divide by
    with pytest.raises(ValueError, match="same 2-D grid"):
        grounding_scores(np.zeros((3, 3)), _region())


def test_heat_ratio_is_one_for_a_flat_map_and_the_inverse_area_share_when_all_heat_is_inside() -> None:
    from training.metrics import heat_in_region_ratio

    region = np.zeros((10, 10), dtype=bool)
    region[2:4, 2:7] = True  # 10 % of the image
    assert heat_in_region_ratio(np.ones((10, 10)), region) == pytest.approx(1.0)
    concentrated = np.where(region, 1.0, 0.0)
    assert heat_in_region_ratio(concentrated, region) == pytest.approx(10.0)
    assert np.isnan(heat_in_region_ratio(np.zeros((10, 10)), region))


def test_heat_outside_share_counts_positive_heat_beyond_the_region() -> None:
    heat = np.zeros((4, 4))
    heat[0, 0], heat[3, 3], heat[3, 0] = 3.0, 1.0, -5.0  # negative heat is no heat
    assert heat_outside_share(heat, _region()) == pytest.approx(0.25)
    assert heat_outside_share(np.where(_region(), 1.0, 0.0), _region()) == 0.0
    assert math.isnan(heat_outside_share(np.zeros((4, 4)), _region()))
