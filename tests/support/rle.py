"""COCO RLE back to a bitmap: the client side of the service's `rle` mask field, for tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def decode_coco_rle(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of `app.postprocess.coco_rle`: (H, W) bool from column-major runs starting with zeros."""
    height, width = rle["size"]
    values = np.zeros(height * width, dtype=np.uint8)
    position, value = 0, 0
    for count in rle["counts"]:
        values[position : position + count] = value
        position += count
        value = 1 - value
    return values.reshape((height, width), order="F").astype(bool)
