"""The grayscale pipeline's header values (PS3.3 C.11), read once, validated, ready to apply.

Modality LUT or rescale, VOI LUT or window, and pixel padding are all optional and all appear broken
in the wild: text where a number belongs, NaN, empty elements, LUTs shorter than their descriptor.
``read_grayscale_header`` settles every one of them from the header alone, so the header check can
refuse a broken file before decoding and the renderer can trust what it is given. Empty optional
elements count as absent, with a note for ``info.warnings``; anything else malformed is
``invalid_dicom`` naming the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.contract.imaging.dicom_luts import Lut, read_lut
from app.contract.imaging.dicom_values import (
    optional_float,
    optional_floats,
    optional_int,
    sequence_items,
    values_of,
)

__all__ = ["GrayscaleHeader", "Window", "is_little_endian", "read_grayscale_header"]


@dataclass(frozen=True)
class Window:
    """The first Window Center/Width pair and the VOI LUT Function that shapes it."""

    center: float
    width: float
    function: str  # LINEAR (default), LINEAR_EXACT or SIGMOID; others are treated as LINEAR
    count: int  # how many windows the header lists


@dataclass(frozen=True)
class GrayscaleHeader:
    """Validated values of the Modality LUT, VOI LUT and Pixel Padding modules."""

    modality_lut: Lut | None
    slope: float
    intercept: float
    voi_lut: Lut | None
    voi_lut_count: int
    window: Window | None
    padding: tuple[int, int] | None  # inclusive range of stored values that are padding
    notes: tuple[str, ...]  # empty optional elements that were ignored


def is_little_endian(dataset: Dataset) -> bool:
    """The byte order the dataset was read in (OW values such as LUT data keep it)."""
    _, little_endian = dataset.original_encoding
    if little_endian is not None:
        return bool(little_endian)
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return not (uid is not None and uid.is_transfer_syntax and not uid.is_little_endian)


def _first_lut(dataset: Dataset, keyword: str, label: str, signed: bool, notes: list[str]) -> Lut | None:
    items = sequence_items(dataset, keyword)
    if not items:
        return None
    lut = read_lut(
        items[0],
        "LUTDescriptor",
        "LUTData",
        f"{label} item 1",
        little_endian=is_little_endian(dataset),
        signed=signed,
    )
    if lut is None:
        notes.append(f"{label} item 1 has no LUT Descriptor and no LUT Data: ignored")
    return lut


def _window(dataset: Dataset) -> Window | None:
    centers = optional_floats(dataset, "WindowCenter")
    widths = optional_floats(dataset, "WindowWidth")
    if centers is None or widths is None:
        return None
    values = values_of(dataset, "VOILUTFunction")
    function = str(values[0]).strip().upper() if values else "LINEAR"
    return Window(center=centers[0], width=widths[0], function=function or "LINEAR", count=len(centers))


def _as_stored(value: int, signed: bool, bits_allocated: int) -> int:
    """A padding value written as an unsigned short means a negative stored value in signed images."""
    if signed and bits_allocated == 16 and value > 32767:
        return value - 65536
    return value


def _padding(dataset: Dataset, signed: bool) -> tuple[int, int] | None:
    value = optional_int(dataset, "PixelPaddingValue")
    if value is None:
        return None
    bits_allocated = optional_int(dataset, "BitsAllocated") or 16
    first = _as_stored(value, signed, bits_allocated)
    limit = optional_int(dataset, "PixelPaddingRangeLimit")
    if limit is None:
        return first, first
    low, high = sorted((first, _as_stored(limit, signed, bits_allocated)))
    return low, high


def read_grayscale_header(dataset: Dataset) -> GrayscaleHeader:
    """Read and validate the grayscale pipeline's values; raises ``InvalidDicomError``."""
    notes: list[str] = []
    signed = optional_int(dataset, "PixelRepresentation") == 1
    modality_lut = _first_lut(dataset, "ModalityLUTSequence", "Modality LUT Sequence", signed, notes)
    slope = optional_float(dataset, "RescaleSlope")
    if slope == 0.0:  # maps every pixel to the intercept: a writer's placeholder, not a rescale
        notes.append("Rescale Slope 0 ignored (treated as 1)")
        slope = None
    intercept = optional_float(dataset, "RescaleIntercept")
    voi_items = sequence_items(dataset, "VOILUTSequence")
    voi_lut = _first_lut(dataset, "VOILUTSequence", "VOI LUT Sequence", signed, notes)
    return GrayscaleHeader(
        modality_lut=modality_lut,
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        voi_lut=voi_lut,
        voi_lut_count=len(voi_items),
        window=_window(dataset),
        padding=_padding(dataset, signed),
        notes=tuple(notes),
    )
