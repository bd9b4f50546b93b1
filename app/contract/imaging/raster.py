"""PNG and JPEG decoding with Pillow: size checked from the header before any pixel is decompressed.

Pillow's own decompression-bomb guard is a process-wide setting; it is left untouched and our
``max_pixels`` is enforced per call from the header (``Image.open`` reads only the header).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from io import BytesIO
from types import MappingProxyType
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from app.contract.imaging.colour import gray_from_rgb
from app.contract.imaging.errors import (
    CorruptImageError,
    ImageTooLargeError,
    MultiFrameError,
    UnsupportedPhotometricError,
)
from app.contract.imaging.geometry import NO_REDUCTION, Reduction
from app.contract.imaging.info import DecodedImage, ImageInfo
from app.contract.imaging.reduced import draft_jpeg

__all__ = ["decode_raster"]

logger = logging.getLogger(__name__)

_PIL_FORMATS: Mapping[str, str] = MappingProxyType({"png": "PNG", "jpeg": "JPEG"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def _open_header(data: bytes, fmt: Literal["png", "jpeg"], max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse oversized images before decoding."""
    try:
        image = Image.open(BytesIO(data), formats=[_PIL_FORMATS[fmt]])
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"the {fmt.upper()} header declares an image beyond the decoder's limit"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        logger.debug("%s header unreadable: %s", fmt, type(exc).__name__)
        raise CorruptImageError(f"the {fmt.upper()} header is unreadable ({type(exc).__name__})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{height} x {width} = {width * height} pixels exceeds the limit of {max_pixels}"
        )
    if getattr(image, "n_frames", 1) > 1:
        # Animated PNG: like multi-frame DICOM, not a single radiograph.
        raise MultiFrameError(
            f"the {fmt.upper()} holds {getattr(image, 'n_frames', 0)} frames; one is required"
        )
    return image


def _load(image: Image.Image, fmt: str) -> Image.Image:
    """Decompress the pixels; truncated or damaged streams become ``corrupt_image``."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        logger.debug("%s pixel decode failed: %s", fmt, type(exc).__name__)
        raise CorruptImageError(f"the {fmt.upper()} pixel data are truncated or damaged") from None
    return image


def _alpha_warning(image: Image.Image, info: ImageInfo) -> None:
    alpha = np.asarray(image.getchannel("A"))
    if int(alpha.min()) < 255:
        info.warnings.append("transparency (alpha channel) ignored")


def _to_unit_gray(image: Image.Image, info: ImageInfo) -> np.ndarray:
    """Gray float32 (H, W) in [0, 1] from any Pillow mode, or refuse a truly coloured image."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float32)  # (H, W)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise UnsupportedPhotometricError("32-bit integer images are not supported")
        info.photometric, info.bits_stored = "MONOCHROME2", 16
        if values.max() < 4096:
            info.warnings.append("16-bit image uses at most 12 bits: it renders dark (scaled by 65535)")
        return values / 65535.0
    if mode == "1":
        image = image.convert("L")
        info.steps.append("bilevel_to_gray")
        mode = "L"
    if mode in ("L", "LA"):
        if mode == "LA":
            _alpha_warning(image, info)
            image = image.getchannel("L")
        info.photometric, info.bits_stored = "MONOCHROME2", 8
        return np.asarray(image).astype(np.float32) / 255.0  # (H, W)
    if mode in ("P", "PA"):
        info.steps.append("palette_lut")
        image = image.convert("RGBA")
        info.photometric = "PALETTE COLOR"
    elif mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        info.photometric = "RGB" if mode in ("RGB", "RGBA") else mode
    else:
        raise UnsupportedPhotometricError(f"image mode {mode} is not supported")
    if image.mode == "RGBA":
        _alpha_warning(image, info)
    if image.mode != "RGB":
        image = image.convert("RGB")
    info.bits_stored = 8
    gray = gray_from_rgb(np.asarray(image), 255.0)  # (H, W) in 0..255
    info.steps.append("colour_to_gray:channels agree")
    return gray / 255.0


def _draft(image: Image.Image, fmt: str, min_long_side: int | None, info: ImageInfo) -> Reduction:
    """libjpeg's DCT scaling for a gray JPEG when the caller needs fewer pixels (``reduced.draft_jpeg``).

    Colour JPEGs are decoded at full size: whether their channels agree is judged per pixel (a thin
    coloured annotation must be refused), and averaging would dilute it."""
    if fmt != "jpeg" or not min_long_side or image.mode != "L":
        return NO_REDUCTION
    try:
        factor = draft_jpeg(image, min_long_side)
    except ValueError:
        raise CorruptImageError("the JPEG could not be decoded at a reduced size") from None
    if factor == 1:
        return NO_REDUCTION
    info.steps.append(f"reduced_decode:1/{factor} (JPEG DCT scaling)")
    return Reduction.dct(factor)


def decode_raster(
    data: bytes, fmt: Literal["png", "jpeg"], *, max_pixels: int, min_long_side: int | None = None
) -> DecodedImage:
    """Decode a PNG or JPEG (already sniffed) into the pixel contract; a JPEG at a reduced
    resolution when ``min_long_side`` allows one (see ``decode_bytes``)."""
    with _open_header(data, fmt, max_pixels) as image:
        width, height = image.size
        info = ImageInfo(format=fmt, rows=height, columns=width, photometric=image.mode)
        reduction = _draft(image, fmt, min_long_side, info)
        upright, transposed = _apply_orientation(_load(image, fmt), info)
        info.rows, info.columns = (width, height) if transposed else (height, width)
        pixels = _to_unit_gray(upright, info)  # reduction.shape(rows, columns)
    info.steps.append("scale:float32[0,1]")
    info.warnings.append("no view position in header: assumed frontal")
    return DecodedImage(pixels=np.clip(pixels, 0.0, 1.0).astype(np.float32), info=info, reduction=reduction)


#: EXIF orientations that swap rows and columns (transpose, 90 degrees, transverse, 270 degrees).
_TRANSPOSING = frozenset({5, 6, 7, 8})


def _apply_orientation(image: Image.Image, info: ImageInfo) -> tuple[Image.Image, bool]:
    """Honour the EXIF orientation tag (phone photos of films, some exporters) so anatomy is upright;
    also whether rows and columns were swapped."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in (None, 1):
        return image, False
    info.steps.append(f"exif_orientation:{orientation}")
    upright = ImageOps.exif_transpose(image)
    return upright, orientation in _TRANSPOSING
