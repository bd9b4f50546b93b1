"""Segmentation Dice/IoU against hand-computed cases."""

import math

import numpy as np
import pytest

from training.metrics.segmentation import dice, iou, segmentation_scores


def test_dice_and_iou_of_partial_overlap() -> None:
    predicted = np.array([1, 1, 1, 0, 0], dtype=bool)
    target = np.array([0, 1, 1, 1, 0], dtype=bool)
    assert dice(predicted, target) == pytest.approx(2 * 2 / 6)
    assert iou(predicted, target) == pytest.approx(2 / 4)


def test_both_empty_is_nan_so_it_does_not_inflate_means() -> None:
    empty = np.zeros((2, 2), dtype=bool)
    assert math.isnan(dice(empty, empty)) and math.isnan(iou(empty, empty))


def test_segmentation_scores_threshold_probabilities_per_structure() -> None:
    probabilities = np.zeros((2, 2, 2))
    probabilities[0] = [[0.9, 0.6], [0.4, 0.1]]  # predicted: top row
    probabilities[1] = [[0.0, 0.0], [0.0, 0.7]]  # predicted: bottom-right
    targets = np.zeros((2, 2, 2), dtype=bool)
    targets[0, 0, :] = True
    targets[1, 0, 0] = True
    scores = segmentation_scores(probabilities, targets, ["right_lung", "heart"])
    assert scores["right_lung"] == {"dice": 1.0, "iou": 1.0}
    assert scores["heart"] == {"dice": 0.0, "iou": 0.0}
    with pytest.raises(ValueError):
        segmentation_scores(probabilities, targets, ["right_lung"])
