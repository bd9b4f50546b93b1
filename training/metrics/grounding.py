"""Grounding metrics: how well an attention map points at the annotated region.

Maps are first MIN-MAX normalised to [0, 1] per image and query, then thresholded at several levels and
the results averaged. The released MeDSLIP code thresholds the raw map at 0, which rewards any map
that is positive everywhere; averaging over 0.1..0.5 of the normalised map does not.
Every function expects the map already resampled to the mask's pixel grid (same (H, W)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Thresholds of the normalised map over which IoU and Dice are averaged.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class GroundingScores:
    """Grounding figures of one (image, query, region) triple."""

    pointing_hit: bool
    iou: float
    dice: float
    cnr: float
    heat_ratio: float  # share of the map's heat inside the region / the region's share of the image

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_pair(map_: ArrayLike, mask: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    m = np.asarray(map_, dtype=np.float64)
    region = np.asarray(mask).astype(bool)
    if m.ndim != 2 or m.shape != region.shape:
        raise ValueError(f"map {m.shape} and mask {region.shape} must be the same 2-D grid")
    return m, region


def minmax_normalise(map_: ArrayLike) -> NDArray[np.float64]:
    """(map - min) / (max - min); a constant map becomes all zeros (it points nowhere)."""
    m = np.asarray(map_, dtype=np.float64)
    low, high = float(m.min()), float(m.max())
    if high - low <= 0.0:
        return np.zeros_like(m)
    return (m - low) / (high - low)


def box_to_mask(box: tuple[float, float, float, float], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Boolean (H, W) mask of an ``(x, y, w, h)`` box in pixel units, clipped to the image."""
    height, width = shape
    x, y, w, h = box
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    mask = np.zeros((height, width), dtype=bool)
    if x1 > x0 and y1 > y0:
        mask[y0:y1, x0:x1] = True
    return mask


def pointing_game(map_: ArrayLike, mask: ArrayLike) -> bool:
    """Hit when the map's maximum (first in raster order on ties) lies inside the region."""
    m, region = _check_pair(map_, mask)
    row, col = np.unravel_index(int(np.argmax(m)), m.shape)
    return bool(region[row, col])


def iou_dice_over_thresholds(
    map_: ArrayLike, mask: ArrayLike, thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
) -> tuple[float, float]:
    """Mean IoU = |P∩M|/|P∪M| and mean Dice = 2|P∩M|/(|P|+|M|) over thresholds t, where
    P = {normalised map > t}. Both empty counts as a perfect 1.0 for that threshold."""
    m, region = _check_pair(map_, mask)
    normalised = minmax_normalise(m)
    ious: list[float] = []
    dices: list[float] = []
    region_size = int(region.sum())
    for threshold in thresholds:
        predicted = normalised > threshold
        inter = int((predicted & region).sum())
        union = int((predicted | region).sum())
        total = int(predicted.sum()) + region_size
        ious.append(inter / union if union else 1.0)
        dices.append(2 * inter / total if total else 1.0)
    return float(np.mean(ious)), float(np.mean(dices))


def contrast_to_noise(map_: ArrayLike, mask: ArrayLike) -> float:
    """CNR = |mean_in - mean_out| / sqrt(var_in + var_out) of the normalised map, inside vs outside
    the region (BioViL's definition). NaN when either side is empty or both sides are constant."""
    m, region = _check_pair(map_, mask)
    if region.all() or not region.any():
        return math.nan
    normalised = minmax_normalise(m)
    inside, outside = normalised[region], normalised[~region]
    noise = math.sqrt(float(inside.var()) + float(outside.var()))
    if noise == 0.0:
        return math.nan
    return abs(float(inside.mean()) - float(outside.mean())) / noise


def heat_in_region_ratio(map_: ArrayLike, mask: ArrayLike) -> float:
    """(heat inside / total heat) / (region area / image area) of the map with negatives clipped to 0.

    1.0 is what a flat map scores whatever the region, so a map that localises scores above 1 and the
    figure compares across box sizes. NaN for an empty region or a map with no positive heat.
    """
    m, region = _check_pair(map_, mask)
    if not region.any():
        return math.nan
    return _heat_inside(m, region) / (float(region.sum()) / region.size)


def heat_outside_share(map_: ArrayLike, mask: ArrayLike) -> float:
    """Share of the map's heat (negatives clipped to 0) that falls OUTSIDE the region; NaN for a map
    with no positive heat. 0 is a map that keeps all its heat inside."""
    m, region = _check_pair(map_, mask)
    return 1.0 - _heat_inside(m, region)


def _heat_inside(m: NDArray[np.float64], region: NDArray[np.bool_]) -> float:
    """Share of the map's positive heat inside the region; NaN for a map with no positive heat."""
    heat = np.clip(m, 0.0, None)
    total = float(heat.sum())
    if total <= 0.0:
        return math.nan
    return float(heat[region].sum()) / total


def grounding_scores(
    map_: ArrayLike, mask: ArrayLike, thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
) -> GroundingScores:
    """Pointing game, threshold-averaged IoU/Dice and CNR for one map and one region."""
    iou_value, dice_value = iou_dice_over_thresholds(map_, mask, thresholds)
    return GroundingScores(
        pointing_hit=pointing_game(map_, mask),
        iou=iou_value,
        dice=dice_value,
        cnr=contrast_to_noise(map_, mask),
        heat_ratio=heat_in_region_ratio(map_, mask),
    )
