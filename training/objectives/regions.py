"""Anatomical regions for ASG's region-sentence alignment, built from this project's own masks.

ASG pools 23 Chest ImaGenome boxes; the public data here has organ masks instead (JSRT/SCR: both lungs,
heart, both clavicles; covid-chestxray: a both-lungs mask from V7, or right/left lung boxes). From them
come 11 regions: each lung, its upper / middle / lower zone (the lung mask cut into horizontal thirds of
the lung's bounding box), the heart and each clavicle. Region masks go through the same augmentation as
the image and are reduced to boxes afterwards, so a crop clips a box exactly as ASG's albumentations
pipeline clips its boxes.

Sentences are linked to regions through the report parser: every anatomy the parser attaches to a
finding of the sentence (`sentence_mentions`, including its default anatomies) maps to regions by
`ANATOMY_REGIONS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from training.data.dataset import load_mask, split_lungs
from training.data.manifest import ManifestRecord
from training.data.sources.covid import LUNGS_MASK
from training.reports.lexicon import Lexicon, default_lexicon
from training.reports.parser import sentence_mentions

#: Region slots, in order (the patient's side: "right_*" is on the image's left).
REGIONS: tuple[str, ...] = (
    "right_lung",
    "left_lung",
    "right_upper_zone",
    "right_middle_zone",
    "right_lower_zone",
    "left_upper_zone",
    "left_middle_zone",
    "left_lower_zone",
    "heart",
    "right_clavicle",
    "left_clavicle",
)
_ZONES = ("upper", "middle", "lower")

_BOTH_LUNGS = ("right_lung", "left_lung")
#: Parser anatomy -> regions. Anatomies with no region here (trachea, mediastinum, spine, costophrenic
#: angles' pleura, "unspecified", ...) link to none. A zone is linked only to its own zone, not its lung.
ANATOMY_REGIONS: dict[str, tuple[str, ...]] = {
    "right_lung_unspec": ("right_lung",),
    "right_pleural": ("right_lung",),
    "left_lung_unspec": ("left_lung",),
    "left_pleural": ("left_lung",),
    "pulmonary": _BOTH_LUNGS,
    "parenchymal": _BOTH_LUNGS,
    "interstitium": _BOTH_LUNGS,
    "lung_apices": ("right_upper_zone", "left_upper_zone"),
    "lung_bases": ("right_lower_zone", "left_lower_zone"),
    "upper_right_lobe": ("right_upper_zone",),
    "right_upper_lung": ("right_upper_zone",),
    "right_apical_lung": ("right_upper_zone",),
    "middle_right_lobe": ("right_middle_zone",),
    "right_mid_lung": ("right_middle_zone",),
    "right_hilar": ("right_middle_zone",),
    "lower_right_lobe": ("right_lower_zone",),
    "right_lower_lung": ("right_lower_zone",),
    "right_costophrenic": ("right_lower_zone",),
    "upper_left_lobe": ("left_upper_zone",),
    "left_upper_lung": ("left_upper_zone",),
    "left_apical_lung": ("left_upper_zone",),
    "left_mid_lung": ("left_middle_zone",),
    "left_hilar": ("left_middle_zone",),
    "lower_left_lobe": ("left_lower_zone",),
    "left_lower_lung": ("left_lower_zone",),
    "left_costophrenic": ("left_lower_zone",),
    "retrocardiac": ("left_lower_zone",),
    "heart_size": ("heart",),
    "heart_border": ("heart",),
    "right_atrium": ("heart",),
    "right_ventricle": ("heart",),
    "clavicle": ("right_clavicle", "left_clavicle"),  # the lexicon's "clavicle" carries no side
}


def sentence_regions(sentence: str, lexicon: Lexicon | None = None) -> frozenset[str]:
    """Regions a sentence speaks of: the parser's anatomies of all its findings, mapped to regions."""
    lexicon = lexicon or default_lexicon()
    return frozenset(
        region
        for mention in sentence_mentions(sentence, lexicon)
        for anatomy in mention.anatomies
        for region in ANATOMY_REGIONS.get(anatomy, ())
    )


def _box_mask(shape: tuple[int, int], x: float, y: float, w: float, h: float) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.float32)
    top, left = max(round(y), 0), max(round(x), 0)
    mask[top : max(round(y + h), top), left : max(round(x + w), left)] = 1.0
    return mask


def lung_masks(record: ManifestRecord, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Right / left lung masks (H, W) of a record: its own side masks, else its both-lungs mask split
    into two side-by-side blobs (`split_lungs`), else its right / left lung boxes filled in."""
    available = record.masks or {}
    if "right_lung" in available and "left_lung" in available:
        return {side: load_mask(available[side]) for side in _BOTH_LUNGS}
    if LUNGS_MASK in available:
        sides = split_lungs(load_mask(available[LUNGS_MASK]))
        if sides is not None:
            return dict(zip(_BOTH_LUNGS, sides, strict=True))
    boxes = {box.label.lower().replace(" ", "_"): box for box in record.boxes}
    return {side: _box_mask(shape, boxes[side].x, boxes[side].y, boxes[side].w, boxes[side].h)
            for side in _BOTH_LUNGS if side in boxes}


def zone_masks(lung: np.ndarray) -> list[np.ndarray]:
    """Upper, middle, lower zone of a lung mask (H, W): the mask within each third of its box's height."""
    rows = np.flatnonzero(lung.any(axis=1))
    if rows.size == 0:
        return [np.zeros_like(lung) for _ in _ZONES]
    top, height = rows[0], rows[-1] + 1 - rows[0]
    cuts = [top + round(height * k / 3) for k in range(4)]
    zones = []
    for start, stop in itertools.pairwise(cuts):
        zone = np.zeros_like(lung)
        zone[start:stop] = lung[start:stop]
        zones.append(zone)
    return zones


def region_masks(record: ManifestRecord, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(R, H, W) float32 masks of `REGIONS` at the image's size and (R,) bool: which the record has."""
    masks: dict[str, np.ndarray] = {}
    for side, lung in lung_masks(record, shape).items():
        masks[side] = lung
        prefix = side.removesuffix("_lung")
        for zone, mask in zip(_ZONES, zone_masks(lung), strict=True):
            masks[f"{prefix}_{zone}_zone"] = mask
    for name in ("heart", "right_clavicle", "left_clavicle"):
        if name in (record.masks or {}):
            masks[name] = load_mask((record.masks or {})[name])
    stacked = np.stack([masks.get(name, np.zeros(shape, np.float32)) for name in REGIONS])  # (R, H, W)
    valid = np.array([name in masks and bool(masks[name].any()) for name in REGIONS])  # (R,)
    return stacked, valid


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, S, S) binary masks -> (R, 4) float32 boxes (x0, y0, x1, y1) in pixels (x1, y1 exclusive) and
    (R,) bool: non-empty. Empty masks get the box (0, 0, 0, 0)."""
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    present = np.asarray(masks.reshape(masks.shape[0], -1).any(axis=1), dtype=bool)  # (R,)
    for index in np.flatnonzero(present):
        rows = np.flatnonzero(masks[index].any(axis=1))
        columns = np.flatnonzero(masks[index].any(axis=0))
        boxes[index] = (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
    return boxes, present


def region_links(sentences: Sequence[str], lexicon: Lexicon | None = None) -> np.ndarray:
    """(R, M) bool: sentence m of a report names region r."""
    lexicon = lexicon or default_lexicon()
    links = np.zeros((len(REGIONS), len(sentences)), dtype=bool)
    index = {name: i for i, name in enumerate(REGIONS)}
    for column, sentence in enumerate(sentences):
        for region in sentence_regions(sentence, lexicon):
            links[index[region], column] = True
    return links

