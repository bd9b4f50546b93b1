"""Turn raw model outputs into what a client can draw: maps at ORIGINAL resolution, peaks, boxes, masks.

Why here and not in the graph: the letterbox inverse depends on each image's size, so it runs per
request (in a worker thread) with `app.contract.imaging.Letterbox`, the same code that made the input.
Coordinates are pixel edges of the original image: box = [x0, y0, x1, y1] with x1/y1 exclusive.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from app.contract.imaging import Letterbox
from app.gray_png import encode_gray8, quantise

MAP_THRESHOLD = 0.5  # fraction of a heatmap's maximum that counts as "inside" for boxes and finding masks
HEATMAP_LEVELS = 64  # gray levels of heatmap PNGs (see png_base64)


def normalise(map_: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the map's own range (attention maps are tiny softmax values)."""
    low, high = float(map_.min()), float(map_.max())
    if high - low <= 1e-12:
        return np.zeros_like(map_, dtype=np.float32)
    scaled = np.subtract(map_, low, dtype=np.result_type(map_.dtype, np.float32))  # (H, W), the new array
    np.divide(scaled, high - low, out=scaled)
    return scaled.astype(np.float32, copy=False)


def to_original(model_map: np.ndarray, box: Letterbox) -> np.ndarray:
    """A map covering the model canvas, (G, G) or (S, S) -> (src_h, src_w) in original pixels."""
    return np.asarray(box.to_original(np.asarray(model_map, dtype=np.float32)), dtype=np.float32)


def png_base64(gray: np.ndarray, *, levels: int = 256) -> str:
    """(H, W) float in [0, 1] or bool -> base64 of an 8-bit grayscale PNG (`app.gray_png`).

    `levels` < 256 quantises (still spanning 0..255): smooth full-resolution heatmaps at 64 levels
    look the same but encode ~3x faster and ~10x smaller.
    """
    return base64.b64encode(encode_gray8(quantise(gray, levels))).decode("ascii")


def peak(map_: np.ndarray) -> dict[str, int]:
    """Location of the maximum, as {"x": column, "y": row}."""
    row, col = np.unravel_index(int(np.argmax(map_)), map_.shape)
    return {"x": int(col), "y": int(row)}


def box_from_mask(mask: np.ndarray) -> list[int] | None:
    """Tight [x0, y0, x1, y1] (x1/y1 exclusive) around True pixels, None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE: column-major run lengths starting with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def anatomy_localisation(
    finding_map: np.ndarray,
    anatomy_maps: np.ndarray,
    anatomy_probs: np.ndarray,
    names: tuple[str, ...],
    top_k: int,
) -> list[dict[str, Any]]:
    """Rank regions by overlap(finding map, anatomy map) x anatomy probability, best first.

    finding_map (G, G); anatomy_maps (Qa, G, G); anatomy_probs (Qa,). The finding map is normalised to
    sum 1 and each anatomy map to max 1, so overlap is the share of the finding's attention that falls
    inside the region; weighting by the anatomy stream's probability prefers regions the model sees.
    """
    weights = np.clip(finding_map, 0.0, None)
    total = float(weights.sum())
    if total <= 0.0:
        return []
    weights = weights / total  # (G, G)
    peaks = anatomy_maps.reshape(anatomy_maps.shape[0], -1).max(axis=1).clip(min=1e-12)  # (Qa,)
    regions = anatomy_maps / peaks[:, None, None]  # (Qa, G, G)
    overlap = (regions * weights[None]).sum(axis=(1, 2))  # (Qa,)
    scores = overlap * anatomy_probs  # (Qa,)
    order = np.argsort(-scores)[:top_k]
    return [{"name": names[i], "score": round(float(scores[i]), 6)} for i in order]


def grounding(
    grid_map: np.ndarray,
    box: Letterbox,
    *,
    anatomy_maps: np.ndarray,
    anatomy_probs: np.ndarray,
    anatomy_names: tuple[str, ...],
    top_k: int,
) -> dict[str, Any]:
    """Heatmap PNG, peak, box and anatomy list for one finding, in original pixels."""
    original = normalise(to_original(grid_map, box))  # (src_h, src_w)
    height, width = original.shape
    return {
        "heatmap": {
            "png_base64": png_base64(original, levels=HEATMAP_LEVELS),
            "width": int(width),
            "height": int(height),
        },
        "peak": peak(original),
        "box": box_from_mask(original >= MAP_THRESHOLD),
        "anatomy": anatomy_localisation(grid_map, anatomy_maps, anatomy_probs, anatomy_names, top_k),
    }


def mask_payload(name: str, kind: str, mask: np.ndarray, *, with_rle: bool) -> dict[str, Any]:
    """The /segment entry for one binary (src_h, src_w) mask."""
    height, width = mask.shape
    payload: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "png_base64": png_base64(mask),
        "width": int(width),
        "height": int(height),
        "area_fraction": round(float(mask.mean()), 6),
        "box": box_from_mask(mask),
    }
    if with_rle:
        payload["rle"] = coco_rle(mask)
    return payload


def segmentation_probability(logits: np.ndarray, box: Letterbox) -> np.ndarray:
    """(S, S) logits of one structure -> (src_h, src_w) float32 sigmoid probability in original pixels."""
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))  # (S, S)
    return to_original(probs, box)


def segmentation_mask(logits: np.ndarray, box: Letterbox, threshold: float) -> np.ndarray:
    """(S, S) logits of one structure -> (src_h, src_w) bool mask (sigmoid >= threshold)."""
    return segmentation_probability(logits, box) >= threshold


def finding_mask(grid_map: np.ndarray, box: Letterbox) -> np.ndarray:
    """A finding's grounding map thresholded at MAP_THRESHOLD of its maximum, at original resolution."""
    return normalise(to_original(grid_map, box)) >= MAP_THRESHOLD
