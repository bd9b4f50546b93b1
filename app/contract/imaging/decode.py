"""Entry points: bytes or a path in, a ``DecodedImage`` (or a typed refusal) out."""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset

from app.contract.imaging.dicom_header import check_dicom_header
from app.contract.imaging.dicom_pixels import render_dicom
from app.contract.imaging.dicom_read import looks_like_image_dataset, read_dicom
from app.contract.imaging.errors import InvalidDicomError, UnsupportedMediaTypeError
from app.contract.imaging.info import DecodedImage
from app.contract.imaging.raster import decode_raster
from app.contract.imaging.rendering_checks import MIN_SIDE, check_rendering
from app.contract.imaging.sniff import declared_format, sniff_format

__all__ = ["DEFAULT_MAX_PIXELS", "MIN_SIDE", "decode_bytes", "decode_path"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000


def _decode_dataset(
    dataset: Dataset,
    *,
    max_pixels: int,
    allow_lateral: bool,
    check_body_part: bool,
    has_preamble: bool,
    min_long_side: int | None,
) -> DecodedImage:
    info = check_dicom_header(
        dataset, max_pixels=max_pixels, allow_lateral=allow_lateral, check_body_part=check_body_part
    )
    if not has_preamble:
        info.warnings.append("DICOM file without preamble (read as a bare dataset)")
    pixels, reduction = render_dicom(dataset, info, min_long_side=min_long_side)  # (h, w) float32 [0, 1]
    return DecodedImage(pixels=pixels, info=info, reduction=reduction)


def decode_bytes(
    data: bytes,
    media_type: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_lateral: bool = False,
    check_body_part: bool = True,
    min_side: int = MIN_SIDE,
    min_long_side: int | None = None,
) -> DecodedImage:
    """Decode DICOM, PNG or JPEG bytes into float32 (H, W) pixels in [0, 1] (0 = black).

    The format comes from the bytes; ``media_type`` is checked against it. ``check_body_part=False``
    skips the DICOM Body Part Examined refusal (tests and tools that need non-chest images). An
    image under ``min_side`` pixels on its short side is refused (``image_too_small``); every other
    refusal takes precedence. Raises an ``ImagingError`` subclass for anything refused.

    ``min_long_side``: the caller needs no more than this many pixels on the long side (the service
    passes ``PreprocessingSpec.decode_long_side``). Where the codec can (JPEG 2000 resolution levels,
    JPEG DCT scaling) the image is then decoded at a power-of-two reduction that keeps at least that
    many; ``image.reduction`` says by how much, ``info.rows``/``columns`` stay the original size.
    None (the default): full resolution, always.
    """
    if not data:
        raise UnsupportedMediaTypeError("empty upload")
    declared = declared_format(media_type)
    sniffed = sniff_format(data)
    if sniffed is not None and declared is not None and sniffed != declared:
        raise UnsupportedMediaTypeError(f"declared {declared.upper()} but the content is {sniffed.upper()}")
    if sniffed in ("png", "jpeg"):
        image = decode_raster(data, sniffed, max_pixels=max_pixels, min_long_side=min_long_side)
    elif sniffed == "dicom" or declared == "dicom":
        image = _decode_dataset(
            read_dicom(data),
            max_pixels=max_pixels,
            allow_lateral=allow_lateral,
            check_body_part=check_body_part,
            has_preamble=sniffed == "dicom",
            min_long_side=min_long_side,
        )
    elif declared is not None:
        raise UnsupportedMediaTypeError(
            f"declared {declared.upper()} but the content is not {declared.upper()}"
        )
    else:
        image = _decode_undeclared(
            data,
            max_pixels=max_pixels,
            allow_lateral=allow_lateral,
            check_body_part=check_body_part,
            min_long_side=min_long_side,
        )
    check_rendering(image, min_side=min_side)
    logger.debug(
        "decoded %s %dx%d at 1/%d steps=%s",
        image.info.format,
        image.info.rows,
        image.info.columns,
        image.reduction.factor,
        image.info.steps,
    )
    return image


def _decode_undeclared(
    data: bytes, *, max_pixels: int, allow_lateral: bool, check_body_part: bool, min_long_side: int | None
) -> DecodedImage:
    """No magic number and no media type: accept only a preamble-less DICOM image dataset."""
    try:
        dataset = read_dicom(data)
    except InvalidDicomError:
        raise UnsupportedMediaTypeError("the content is neither DICOM, PNG nor JPEG") from None
    if not looks_like_image_dataset(dataset):
        raise UnsupportedMediaTypeError("the content is neither DICOM, PNG nor JPEG")
    return _decode_dataset(
        dataset,
        max_pixels=max_pixels,
        allow_lateral=allow_lateral,
        check_body_part=check_body_part,
        has_preamble=False,
        min_long_side=min_long_side,
    )


def decode_path(
    path: str | Path,
    media_type: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_lateral: bool = False,
    check_body_part: bool = True,
    min_side: int = 0,
    min_long_side: int | None = None,
) -> DecodedImage:
    """``decode_bytes`` on a file's content (the name's suffix is not trusted).

    Files are what tools and training read (datasets, masks, small synthetic fixtures), so no
    minimum size applies unless ``min_side`` asks for one; uploads go through ``decode_bytes``.
    """
    data = Path(path).read_bytes()
    return decode_bytes(
        data,
        media_type,
        max_pixels=max_pixels,
        allow_lateral=allow_lateral,
        check_body_part=check_body_part,
        min_side=min_side,
        min_long_side=min_long_side,
    )
