"""Segmentation overlap per structure (right/left lung, heart, right/left clavicle)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _pair(predicted: ArrayLike, target: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    p = np.asarray(predicted).astype(bool)
    t = np.asarray(target).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
    return p, t


def dice(predicted: ArrayLike, target: ArrayLike) -> float:
    """Dice = 2|P∩T| / (|P| + |T|). NaN when both are empty: nothing to score, so it is left out of
    means instead of inflating them."""
    p, t = _pair(predicted, target)
    total = int(p.sum()) + int(t.sum())
    return 2.0 * int((p & t).sum()) / total if total else math.nan


def iou(predicted: ArrayLike, target: ArrayLike) -> float:
    """IoU (Jaccard) = |P∩T| / |P∪T|; NaN when both are empty."""
    p, t = _pair(predicted, target)
    union = int((p | t).sum())
    return int((p & t).sum()) / union if union else math.nan


def segmentation_scores(
    probabilities: ArrayLike, targets: ArrayLike, structures: Sequence[str], threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """Dice and IoU per structure of one image: ``probabilities`` (K, H, W) sigmoid outputs, ``targets``
    (K, H, W) boolean masks in the same structure order. A structure is present where p >= threshold."""
    probs = np.asarray(probabilities, dtype=np.float64)
    masks = np.asarray(targets).astype(bool)
    if probs.shape != masks.shape or probs.shape[0] != len(structures):
        raise ValueError(f"probabilities {probs.shape}, targets {masks.shape}, {len(structures)} structures")
    scores: dict[str, dict[str, float]] = {}
    for index, name in enumerate(structures):
        predicted = probs[index] >= threshold
        scores[name] = {"dice": dice(predicted, masks[index]), "iou": iou(predicted, masks[index])}
    return scores
