"""Pixel Padding Value matching that survives lossy compression.

Padding (the area outside the collimated field, written as one stored value) is blacked out and kept
out of the min/max window. After lossy compression the padding area no longer holds exactly that
value: exact matching kept 19,161 of 55,772 padding pixels of a JPEG-LS near-lossless CT. So padding
is matched within a tolerance:

* lossless syntaxes (and no Lossy Image Compression "01" in the header): exact match;
* JPEG-LS near-lossless: the codestream's NEAR parameter, the codec's guaranteed largest error;
* other lossy data (JPEG, lossy JPEG 2000, or a header saying the pixels were once lossy-compressed):
  1/64 of the stored range (4 levels at 8 bits, 64 at 12). Pixels that close to the padding value are
  at the extreme of the range the padding was chosen from, so blacking them out changes nothing a
  reader could see; missing the padding would leave a bright frame and a skewed window.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

from app.contract.imaging.info import ImageInfo

__all__ = ["LOSSY_PADDING_FRACTION", "padding_mask", "padding_tolerance"]

LOSSY_PADDING_FRACTION = 1 / 64
# Syntaxes whose decoded values may differ from the encoded ones (JPEG 2000 and HTJ2K without
# "Lossless Only" may be either; the header's Lossy Image Compression "00" marks the lossless case).
_LOSSY_SYNTAXES = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, HTJ2K})
_MAY_BE_LOSSLESS = frozenset({JPEG2000, HTJ2K})


def _lossy_flag(dataset: Dataset) -> str:
    try:
        return str(dataset.get("LossyImageCompression", "") or "").strip()
    except Exception:  # a malformed optional flag says nothing
        return ""


def padding_tolerance(dataset: Dataset, info: ImageInfo, near: int | None) -> int:
    """How far (in stored values) a decoded padding pixel may be from the header's padding value."""
    transfer_syntax = info.transfer_syntax or ""
    flag = _lossy_flag(dataset)
    if transfer_syntax == JPEGLSNearLossless and near is not None:
        return near
    lossy = flag == "01" or (transfer_syntax in _LOSSY_SYNTAXES and not (
        transfer_syntax in _MAY_BE_LOSSLESS and flag == "00"
    ))
    if not lossy:
        return 0
    return max(1, round(2 ** (info.bits_stored or 8) * LOSSY_PADDING_FRACTION))


def padding_mask(
    dataset: Dataset, stored: np.ndarray, padding: tuple[int, int] | None, near: int | None, info: ImageInfo
) -> tuple[np.ndarray | None, int]:
    """(H, W) bool of padding pixels (None without a Pixel Padding Value) and the tolerance used."""
    if padding is None:
        return None, 0
    tolerance = padding_tolerance(dataset, info, near)
    low, high = padding[0] - tolerance, padding[1] + tolerance
    if np.issubdtype(stored.dtype, np.integer):  # compare within the dtype: no wrap-around
        limits = np.iinfo(stored.dtype)
        if high < limits.min or low > limits.max:
            return np.zeros(stored.shape, dtype=bool), tolerance
        low, high = max(low, int(limits.min)), min(high, int(limits.max))
    mask = stored >= stored.dtype.type(low)
    mask &= stored <= stored.dtype.type(high)
    return mask, tolerance  # (H, W) bool
