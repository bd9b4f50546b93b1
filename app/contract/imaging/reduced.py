"""Reduced-resolution decoding: let the codec skip the detail the model will never see.

The model reads 224-512 pixels a side; a 2140 x 1760 JPEG 2000 lossless film costs 0.3-0.9 s to
decode at full size. Two codecs can decode at a power-of-two reduction for a fraction of the cost:

* JPEG 2000: discard resolution levels (OpenJPEG's ``reduce``, through Pillow's ``reduce``
  attribute): level ``r`` returns the wavelet's low-pass image at 1/2**r, without entropy-decoding
  the code-blocks of the finer levels.
* JPEG (DCT): libjpeg's scaled inverse DCT (Pillow's ``draft``), 1/2, 1/4 or 1/8.

Both return ``ceil(H / f) x ceil(W / f)`` pixels, placed on the original grid as ``geometry.Reduction``
says (block means for JPEG, even-grid low-pass samples for JPEG 2000). The factor is the
largest the codec allows that keeps the long side at least ``min_long_side``. Anything unusual
(colour, signed or mismatched precision, JP2 wrappers, a codec error, an unexpected shape) returns
``None`` and the caller decodes at full resolution, exactly as without this module.

The JPEG 2000 code-blocks that remain are entropy-decoded by OpenJPEG's thread pool, whose size the
library reads from ``OPJ_NUM_THREADS`` each time a codec is created (Pillow has no parameter for it);
``set_j2k_threads`` sets it once per process, before any decode.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit

from app.contract.imaging.codestream import j2k_header
from app.contract.imaging.geometry import Reduction
from app.contract.imaging.info import ImageInfo

__all__ = [
    "J2K_THREADS_ENV",
    "JPEG_FACTORS",
    "Reduced",
    "decode_dicom_reduced",
    "decode_j2k_reduced",
    "decode_jpeg_reduced",
    "draft_jpeg",
    "j2k_level",
    "j2k_threads",
    "set_j2k_threads",
]

logger = logging.getLogger(__name__)

#: The environment variable OpenJPEG sizes its decoding thread pool from.
J2K_THREADS_ENV = "OPJ_NUM_THREADS"

#: Scalings of libjpeg's DCT that Pillow's ``draft`` uses, largest first.
JPEG_FACTORS = (8, 4, 2)


@dataclass(frozen=True)
class Reduced:
    """Stored values decoded at a reduction: ``reduction.shape(H, W)`` uint8/uint16."""

    stored: np.ndarray
    reduction: Reduction
    step: str  # the entry recorded in ImageInfo.steps


def j2k_threads(threads: int) -> int:
    """The JPEG 2000 decoding threads a setting asks for: 0 means one per CPU this process may use."""
    if threads < 0:
        raise ValueError("threads must be >= 0")
    return threads or len(os.sched_getaffinity(0))


def set_j2k_threads(threads: int) -> int:
    """Size OpenJPEG's thread pool for every later JPEG 2000 decode in this process (and in processes
    it starts afterwards, which inherit the environment); returns the count. Call it at process start,
    before other threads decode: the environment is process-wide state. Multi-threaded decoding gives
    the same samples as one thread (the code-blocks are independent)."""
    count = j2k_threads(threads)
    os.environ[J2K_THREADS_ENV] = str(count)
    return count


def j2k_level(rows: int, columns: int, min_long_side: int, levels: int) -> int:
    """The resolution level to decode at: the largest ``r <= levels`` whose reduced long side is at
    least ``min_long_side`` and whose size Pillow computes the way OpenJPEG does (0: full size).

    Pillow sizes a reduced image as ``floor(n / 2**r + 1/2)`` while OpenJPEG writes ``ceil(n / 2**r)``
    pixels; where they differ (e.g. 1841 at r = 2: 460 vs 461) Pillow refuses the decode, so such a
    level is skipped for the next finer one (r = 1 always agrees).
    """
    level = 0
    for r in range(1, max(0, levels) + 1):
        factor = 1 << r
        if max(Reduction(factor).shape(rows, columns)) < min_long_side:
            break
        if all((n + factor // 2) // factor == -(-n // factor) for n in (rows, columns)):
            level = r
    return level


def decode_j2k_reduced(
    frame: bytes, *, rows: int, columns: int, bits_stored: int, min_long_side: int
) -> Reduced | None:
    """A single-component, unsigned JPEG 2000 codestream decoded at the level ``j2k_level`` picks,
    with the codestream's own sample values (Pillow scales them to 8 or 16 bits; undone here)."""
    header = j2k_header(frame)
    if (
        header is None
        or (header.rows, header.columns) != (rows, columns)
        or header.components != 1
        or header.signed
        or header.precision != bits_stored
        or not 1 <= header.precision <= 16
    ):
        return None
    level = j2k_level(rows, columns, min_long_side, header.levels)
    if level == 0:
        return None
    reduction = Reduction.wavelet(1 << level)
    try:
        with Image.open(BytesIO(frame), formats=["JPEG2000"]) as image:
            image.reduce = level  # type: ignore[method-assign,assignment]  # Pillow's J2K attribute
            image.load()
            mode = image.mode
            stored = np.array(image)  # (ceil(H / f), ceil(W / f)) uint8 ("L") or uint16 ("I;16")
    except Exception as exc:  # codec errors on untrusted input: the full decode decides
        logger.debug("reduced JPEG 2000 decode failed: %s", type(exc).__name__)
        return None
    container = {"L": 8, "I;16": 16}.get(mode)
    if container is None or stored.shape != reduction.shape(rows, columns):
        return None
    if container > header.precision:  # Pillow shifts samples up to its container's bit depth
        np.right_shift(stored, container - header.precision, out=stored)
    step = f"reduced_decode:1/{reduction.factor} (JPEG 2000 resolution level {level})"
    return Reduced(stored, reduction, step)


def draft_jpeg(image: Image.Image, min_long_side: int) -> int:
    """Ask libjpeg for the largest DCT scaling that keeps ``min_long_side`` pixels on the long side,
    before the pixels are loaded; returns the factor applied (1: none)."""
    width, height = image.size
    factor = next(
        (f for f in JPEG_FACTORS if max(Reduction(f).shape(height, width)) >= min_long_side), 1
    )
    if factor == 1 or min(width, height) < factor:
        return 1
    drafted = image.draft(None, (width // factor, height // factor))
    if drafted is None:  # not a plain one-tile JPEG: decoded at full size
        return 1
    applied = round(width / drafted[1][2])
    if image.size != (-(-width // applied), -(-height // applied)):
        raise ValueError("libjpeg scaled the image to an unexpected size")
    return applied


def decode_jpeg_reduced(frame: bytes, *, rows: int, columns: int, min_long_side: int) -> Reduced | None:
    """An 8-bit gray JPEG frame (DICOM JPEG Baseline) decoded with libjpeg's DCT scaling."""
    try:
        with Image.open(BytesIO(frame), formats=["JPEG"]) as image:
            if image.mode != "L" or image.size != (columns, rows):
                return None
            factor = draft_jpeg(image, min_long_side)
            if factor == 1:
                return None
            image.load()
            stored = np.array(image)  # (ceil(H / f), ceil(W / f)) uint8
    except Exception as exc:  # codec errors on untrusted input: the full decode decides
        logger.debug("reduced JPEG decode failed: %s", type(exc).__name__)
        return None
    reduction = Reduction.dct(factor)
    if stored.shape != reduction.shape(rows, columns):
        return None
    return Reduced(stored, reduction, f"reduced_decode:1/{factor} (JPEG DCT scaling)")


def decode_dicom_reduced(
    dataset: Dataset, frame: bytes, info: ImageInfo, min_long_side: int
) -> Reduced | None:
    """The frame at a reduced resolution where the codec allows it and the samples need no help
    from pydicom (one unsigned gray sample, whole bytes); None: decode at full size."""
    transfer_syntax = dataset.file_meta.TransferSyntaxUID
    bits_stored = info.bits_stored or 0
    bits_allocated = int(dataset.get("BitsAllocated", 0) or 0)
    if (
        info.photometric not in ("MONOCHROME1", "MONOCHROME2")
        or int(dataset.get("SamplesPerPixel", 1) or 1) != 1
        or int(dataset.get("PixelRepresentation", 0) or 0) != 0
        or not 0 < bits_stored <= bits_allocated <= 16
    ):
        return None
    if transfer_syntax in (JPEG2000, JPEG2000Lossless):
        return decode_j2k_reduced(
            frame, rows=info.rows, columns=info.columns, bits_stored=bits_stored, min_long_side=min_long_side
        )
    if transfer_syntax == JPEGBaseline8Bit and bits_stored == bits_allocated == 8:
        return decode_jpeg_reduced(frame, rows=info.rows, columns=info.columns, min_long_side=min_long_side)
    return None
