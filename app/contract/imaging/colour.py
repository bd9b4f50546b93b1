"""Colour-to-gray rule shared by DICOM and PNG/JPEG decoding.

Radiographs are often saved as RGB (screenshots, PACS exports, JPEG with chroma). Such an image is
accepted when its three channels agree (it *is* gray); a truly coloured image (photo, annotated
overlay, heat map) is refused rather than silently averaged into something that is not a radiograph.
"""

from __future__ import annotations

import numpy as np

from app.contract.imaging.errors import UnsupportedPhotometricError

__all__ = ["GRAY_MAX_SPREAD", "GRAY_MEAN_SPREAD", "gray_from_rgb"]

# Thresholds as fractions of the full value range. Lossy JPEG chroma leaves a few levels of
# channel disagreement on gray content; coloured overlays give tens of levels on many pixels.
GRAY_MEAN_SPREAD = 0.01
GRAY_MAX_SPREAD = 0.10
# Fraction of pixels allowed above GRAY_MAX_SPREAD (isolated JPEG ringing at sharp edges).
_OUTLIER_FRACTION = 0.001


def gray_from_rgb(rgb: np.ndarray, value_max: float) -> np.ndarray:
    """Return the channel mean of an effectively-gray ``(H, W, 3)`` array, else refuse.

    ``value_max`` is the largest representable value (255 for 8-bit), so the tolerance is
    independent of bit depth.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UnsupportedPhotometricError(f"expected 3 colour channels, got array of shape {rgb.shape}")
    as_float = rgb.astype(np.float32)  # (H, W, 3)
    spread = (as_float.max(axis=2) - as_float.min(axis=2)) / float(value_max)  # (H, W) in [0, 1]
    mean_spread = float(spread.mean())
    outliers = float((spread > GRAY_MAX_SPREAD).mean())
    if mean_spread > GRAY_MEAN_SPREAD or outliers > _OUTLIER_FRACTION:
        raise UnsupportedPhotometricError(
            "colour image: the colour channels differ (mean spread "
            f"{mean_spread:.3f}, {outliers:.2%} of pixels beyond {GRAY_MAX_SPREAD:.2f}); "
            "only grayscale radiographs are accepted"
        )
    return as_float.mean(axis=2)  # (H, W) float32, same scale as the input
