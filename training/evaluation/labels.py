"""What evaluation scores a record against: its pathology-entity labels and its lung regions.

Kept apart from the evaluator so the int8 calibration tool and the tests read labels the same way
without loading the evaluation loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import maximum_filter1d

from app.contract.vocabulary import PATHOLOGY
from training.data.manifest import ManifestRecord
from training.metrics import box_to_mask

logger = logging.getLogger(__name__)

#: Anatomy query -> (mask key in manifests, box label of covid-chestxray), patient's side.
LUNG_QUERIES: dict[str, tuple[str, str]] = {
    "right_lung_unspec": ("right_lung", "Right Lung"),
    "left_lung_unspec": ("left_lung", "Left Lung"),
}
#: covid-chestxray findings that are neither normal nor a pneumonia: their records are left out.
COVID_NOT_PNEUMONIA = frozenset({"ards"})


def covid_labels(labels: Mapping[str, int]) -> dict[str, int]:
    """covid-chestxray `finding` -> {normal, pneumonia}. "No Finding" is normal; COVID-19, SARS and every
    pathogen/"Pneumonia" finding of that collection is a pneumonia; ARDS alone is neither (dropped)."""
    findings = [name for name, value in labels.items() if value == 1]
    if not findings:
        return {}
    parts = {part.strip() for part in findings[0].split(",")}
    if parts == {"no finding"}:
        return {"normal": 1, "pneumonia": 0}
    if parts <= COVID_NOT_PNEUMONIA:
        return {}
    return {"normal": 0, "pneumonia": 1}


def evaluation_labels(record: ManifestRecord) -> dict[str, int]:
    """Pathology-entity labels of a record (kermany normal/pneumonia, JSRT nodule, covid mapped)."""
    if record.source == "covid-chestxray":
        return covid_labels(record.labels or {})
    return {name: value for name, value in (record.labels or {}).items() if name in PATHOLOGY}


def load_mask(path: str, shape: tuple[int, int]) -> NDArray[np.bool_] | None:
    with Image.open(path) as image:
        mask = np.asarray(image.convert("L")) > 0
    if mask.shape != shape:
        logger.warning("mask size %s differs from its image %s; left out", mask.shape, shape)
        return None
    return mask


def lung_regions(record: ManifestRecord, shape: tuple[int, int]) -> dict[str, tuple[str, NDArray[np.bool_]]]:
    """Anatomy query -> (region kind, boolean region) from lung masks, else lung boxes."""
    regions: dict[str, tuple[str, NDArray[np.bool_]]] = {}
    masks = record.masks or {}
    for query, (mask_key, box_label) in LUNG_QUERIES.items():
        if mask_key in masks:
            mask = load_mask(masks[mask_key], shape)
            if mask is not None:
                regions[query] = (f"mask ({record.source})", mask)
                continue
        for box in record.boxes:
            if box.label == box_label:
                regions[query] = (f"box ({record.source})", box_to_mask((box.x, box.y, box.w, box.h), shape))
    return regions


def load_masks(record: ManifestRecord, shape: tuple[int, int]) -> dict[str, NDArray[np.bool_]]:
    """Every expert mask of the record, read once, by manifest key (a mask of another size is left out,
    see `load_mask`)."""
    loaded = {name: load_mask(path, shape) for name, path in (record.masks or {}).items()}
    return {name: mask for name, mask in loaded.items() if mask is not None}


def chest_region(
    masks: Mapping[str, NDArray[np.bool_]], structures: Sequence[str], grid: int
) -> NDArray[np.bool_] | None:
    """Union of a film's expert masks of `structures` (lungs and heart: the finding maps' body prior),
    grown by one token of the (grid x grid) maps in every direction; None when a mask is missing. Why
    grown: the prior keeps heat one token beyond the structures, on purpose (effusions at the lung
    border), so heat there is not "outside the body"."""
    if not all(name in masks for name in structures):
        return None
    union = np.logical_or.reduce([masks[name] for name in structures])  # (H, W)
    size = 2 * math.ceil(max(union.shape) / grid) + 1  # one token each way, in original pixels
    grown = maximum_filter1d(union.view(np.uint8), size, axis=0)
    return maximum_filter1d(grown, size, axis=1).astype(bool)
