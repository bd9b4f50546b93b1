"""Turn a vetted DICOM dataset into display-ready [0, 1] pixels, recording every step.

Order follows the DICOM grayscale pipeline (PS3.3 C.11): stored values (BitsStored masked) ->
Modality LUT / rescale -> VOI LUT or window -> MONOCHROME1 inversion -> padding to black -> float32.
The VOI step maps straight into [0, 1], which is the output range the inversion works over. Header
values arrive validated (``dicom_grayscale``); whatever they still do to the arithmetic (a window of
1e300, a rescale past float range) is refused rather than rendered as NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    RLELossless,
)

from app.contract.imaging.codestream import codestream_size, jpegls_near
from app.contract.imaging.colour import gray_from_rgb
from app.contract.imaging.dicom_grayscale import (
    GrayscaleHeader,
    Window,
    is_little_endian,
    read_grayscale_header,
)
from app.contract.imaging.dicom_luts import Lut, read_lut
from app.contract.imaging.dicom_padding import padding_mask
from app.contract.imaging.errors import CorruptImageError, InvalidDicomError, UnsupportedPhotometricError
from app.contract.imaging.geometry import NO_REDUCTION, Reduction
from app.contract.imaging.info import ImageInfo
from app.contract.imaging.jpeg_extended import PLUGIN as JPEG_EXTENDED_PLUGIN
from app.contract.imaging.jpeg_extended import ensure_registered
from app.contract.imaging.reduced import decode_dicom_reduced
from app.contract.imaging.rendering_checks import all_finite

__all__ = ["render_dicom"]

logger = logging.getLogger(__name__)

# Measured on the real fixtures (docs/imaging.md): bit-identical to the other plugins and faster,
# e.g. JPEG Baseline 1024^2 in 2 ms with Pillow vs 20 ms with GDCM, RLE 14 ms vs 61 ms. JPEG
# Extended: the only plugin here that decodes 12-bit samples (GDCM fails on them).
_FAST_PLUGINS: Mapping[str, str] = MappingProxyType(
    {
        JPEGBaseline8Bit: "pillow",
        JPEGExtended12Bit: JPEG_EXTENDED_PLUGIN,
        RLELossless: "pylibjpeg",
        JPEG2000: "pylibjpeg",
        JPEG2000Lossless: "pylibjpeg",
    }
)
_PALETTE_COLOURS = ("Red", "Green", "Blue")
_WINDOW_FUNCTIONS = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})


def _first_frame(dataset: Dataset) -> bytes:
    try:
        return next(generate_frames(dataset.PixelData, number_of_frames=1))
    except Exception as exc:  # malformed encapsulation (items, delimiters) on untrusted input
        logger.debug("encapsulated frame unreadable: %s", type(exc).__name__)
        raise CorruptImageError("the encapsulated pixel data are malformed") from None


def _check_codestream_size(frame: bytes, transfer_syntax: str, info: ImageInfo) -> None:
    """Refuse a compressed frame whose own header disagrees with Rows x Columns, before any codec
    allocates what it declares (a small DICOM header around a huge codestream is a bomb)."""
    declared = codestream_size(frame, transfer_syntax)
    if declared is not None and declared != (info.rows, info.columns):
        raise CorruptImageError(
            f"the compressed stream declares {declared[0]} x {declared[1]} pixels, "
            f"the header {info.rows} x {info.columns}"
        )


def _decode_stored_values(
    dataset: Dataset, info: ImageInfo, min_long_side: int | None
) -> tuple[np.ndarray, int | None, Reduction]:
    """Decompress the single frame (as RGB for YBR colour data); also the JPEG-LS NEAR bound and the
    reduction the codec decoded at (``NO_REDUCTION``: full size; see ``reduced``).

    pydicom's defaults mask the bits above BitsStored for native and most compressed syntaxes and
    fix JPEG 2000 / JPEG-LS signedness, so the array holds true stored values. A faster plugin is
    tried first where one is known to give identical pixels; pydicom's own order is the fallback.
    """
    transfer_syntax = dataset.file_meta.TransferSyntaxUID
    near = None
    if transfer_syntax.is_encapsulated:
        frame = _first_frame(dataset)
        _check_codestream_size(frame, transfer_syntax, info)
        near = jpegls_near(frame) if transfer_syntax == JPEGLSNearLossless else None
        reduced = decode_dicom_reduced(dataset, frame, info, min_long_side) if min_long_side else None
        if reduced is not None:
            info.steps.append(reduced.step)
            _record_bits_stored_mask(dataset, info)
            return reduced.stored, near, reduced.reduction
    if transfer_syntax == JPEGExtended12Bit:
        ensure_registered()
    decoder = get_decoder(transfer_syntax)
    preferred = _FAST_PLUGINS.get(transfer_syntax)
    attempts = [preferred, ""] if preferred is not None and preferred in decoder.available_plugins else [""]
    failure = ""
    for plugin in attempts:
        try:
            array, _ = decoder.as_array(dataset, index=0, decoding_plugin=plugin)
            break
        except Exception as exc:  # codec errors on untrusted input: refuse, never crash
            failure = type(exc).__name__
            logger.debug("pixel decode with plugin %r failed: %s", plugin or "any", failure)
    else:
        raise CorruptImageError(f"the pixel data could not be decoded ({failure}); the file may be truncated")
    _record_bits_stored_mask(dataset, info)
    return array, near, NO_REDUCTION  # (H, W) or (H, W, 3)


def _record_bits_stored_mask(dataset: Dataset, info: ImageInfo) -> None:
    bits_allocated = int(dataset.get("BitsAllocated", 0) or 0)
    if info.bits_stored is not None and 0 < info.bits_stored < bits_allocated:
        info.steps.append(f"bits_stored_mask:{info.bits_stored}/{bits_allocated}")


def _palette_rgb(dataset: Dataset, stored: np.ndarray) -> tuple[np.ndarray, float]:
    """Palette lookup in the file's byte order; the value range is the tables' own maximum (an 8-bit
    palette in 16-bit entries would otherwise pass the colour check as near-black gray)."""
    if any(f"Segmented{colour}PaletteColorLookupTableData" in dataset for colour in _PALETTE_COLOURS):
        raise UnsupportedPhotometricError("segmented palette colour lookup tables are not supported")
    luts: list[Lut] = []
    for colour in _PALETTE_COLOURS:
        lut = read_lut(
            dataset,
            f"{colour}PaletteColorLookupTableDescriptor",
            f"{colour}PaletteColorLookupTableData",
            f"{colour} Palette Color Lookup Table",
            little_endian=is_little_endian(dataset),
            signed=int(dataset.get("PixelRepresentation", 0) or 0) == 1,
        )
        if lut is None:
            raise InvalidDicomError(f"PALETTE COLOR image without its {colour} Palette Color Lookup Table")
        luts.append(lut)
    rgb = np.stack([lut.apply(stored) for lut in luts], axis=-1)  # (H, W, 3) float32
    return rgb, max(1.0, *(lut.high for lut in luts))


def _colour_to_gray(dataset: Dataset, stored: np.ndarray, info: ImageInfo) -> np.ndarray:
    """Colour data in [0, 1] when its channels agree; refuses truly coloured images."""
    if info.photometric == "PALETTE COLOR":
        rgb, value_max = _palette_rgb(dataset, stored)
        info.steps.append("palette_lut")
    else:
        rgb = stored
        value_max = float(2 ** (info.bits_stored or 8) - 1)
        if info.photometric != "RGB":
            info.steps.append(f"colour_space:{info.photometric}->RGB")
    gray = gray_from_rgb(rgb, value_max)  # (H, W) float32 in stored units
    info.steps.append("colour_to_gray:channels agree")
    return gray / value_max


def _modality(stored: np.ndarray, header: GrayscaleHeader, info: ImageInfo) -> np.ndarray:
    """Modality LUT or rescale into modality units; identity rescales are not recorded."""
    if header.modality_lut is not None:
        info.steps.append("modality_lut:sequence")
        return header.modality_lut.apply(stored)  # (H, W) float32
    slope, intercept = header.slope, header.intercept
    if slope == 1.0 and intercept == 0.0:
        return stored
    info.steps.append(f"rescale:slope={slope:g},intercept={intercept:g}")
    rescaled = stored.astype(np.float32)  # (H, W); float32 holds 16-bit values exactly
    rescaled *= np.float32(slope)
    rescaled += np.float32(intercept)
    if not all_finite(rescaled):
        raise InvalidDicomError("RescaleSlope and RescaleIntercept take the pixel values beyond float range")
    return rescaled


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2-3 windowing with output range [0, 1] (arithmetic in float64 constants)."""
    x = values.astype(np.float32)  # (H, W), a fresh copy worked on in place
    if function == "SIGMOID":
        x -= np.float32(center)
        x *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):  # exp overflow -> inf -> 0 after the reciprocal: correct
            np.exp(x, out=x)
        x += np.float32(1.0)
        return np.reciprocal(x, out=x)
    if function == "LINEAR_EXACT":
        offset, scale = center - width / 2.0, 1.0 / width
    else:  # LINEAR: the DICOM definition, with its half-pixel offsets
        offset, scale = (center - 0.5) - (width - 1.0) / 2.0, 1.0 / (width - 1.0)
    x -= np.float32(offset)
    x *= np.float32(scale)
    return np.clip(x, 0.0, 1.0, out=x)


def _voi_lut(values: np.ndarray, lut: Lut, count: int, info: ImageInfo) -> np.ndarray:
    """First VOI LUT item, scaled by the LUT's own output range (descriptors often overstate it)."""
    mapped = lut.apply(values)  # (H, W) float32
    info.steps.append(f"voi_lut:sequence item 1 of {count}")
    low, high = lut.low, lut.high
    if high <= low:
        info.warnings.append("VOI LUT is constant: image rendered black")
        return np.zeros_like(mapped)
    mapped -= np.float32(low)
    mapped *= np.float32(1.0 / (high - low))
    return mapped


def _window_function(window: Window) -> tuple[str, bool]:
    """The window function to apply (unknown ones are LINEAR) and whether the width allows it."""
    function = window.function if window.function in _WINDOW_FUNCTIONS else "LINEAR"
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    return function, window.width > minimum_width


def _usable_window(window: Window, info: ImageInfo) -> tuple[str, bool]:
    """``_window_function``, noting in ``info.warnings`` what is not used as written."""
    function, usable = _window_function(window)
    if window.function != function:
        info.warnings.append("unknown VOI LUT Function: LINEAR used")
    if not usable:
        info.warnings.append(f"invalid window width {window.width:g}: min/max used instead")
    return function, usable


def _voi_from_header(header: GrayscaleHeader) -> bool:
    """True when the header fixes the output range (a VOI LUT or a usable window); False when the
    renderer falls back to the pixels' own min/max, which a reduced-resolution decode would narrow
    (averaging removes the extreme pixels), so such films are decoded at full size."""
    return header.voi_lut is not None or (header.window is not None and _window_function(header.window)[1])


def _voi(
    values: np.ndarray, padding: np.ndarray | None, header: GrayscaleHeader, info: ImageInfo
) -> np.ndarray:
    """VOI LUT, else the first window, else the min/max of the non-padding pixels."""
    if header.voi_lut is not None:
        return _voi_lut(values, header.voi_lut, header.voi_lut_count, info)
    window = header.window
    if window is not None:
        function, usable = _usable_window(window, info)
        if usable:
            suffix = f" (first of {window.count})" if window.count > 1 else ""
            info.steps.append(
                f"window:center={window.center:g},width={window.width:g},function={function}{suffix}"
            )
            return _window(values, window.center, window.width, function)
    body = values[~padding] if padding is not None else values.reshape(-1)
    if body.size == 0:
        info.warnings.append("every pixel is padding: image rendered black")
        return np.zeros(values.shape, dtype=np.float32)
    low, high = float(body.min()), float(body.max())
    info.steps.append(f"window:min-max={low:g}..{high:g} (no VOI in header)")
    if high <= low:
        info.warnings.append("constant image: rendered black")
        return np.zeros(values.shape, dtype=np.float32)
    stretched = values.astype(np.float32)  # (H, W)
    stretched -= np.float32(low)
    stretched *= np.float32(1.0 / (high - low))
    return stretched


def _render_gray(
    dataset: Dataset, header: GrayscaleHeader, stored: np.ndarray, near: int | None, info: ImageInfo
) -> np.ndarray:
    padding, tolerance = padding_mask(dataset, stored, header.padding, near, info)  # (H, W) bool or None
    values = _modality(stored, header, info)
    output = _voi(values, padding, header, info)  # (H, W) float32 in [0, 1]
    if not all_finite(output):
        raise InvalidDicomError("the header's window or LUT values take the pixels beyond float range")
    if info.photometric == "MONOCHROME1":
        np.subtract(np.float32(1.0), output, out=output)
        info.steps.append("invert:MONOCHROME1")
    elif str(dataset.get("PresentationLUTShape", "")).strip().upper() == "INVERSE":
        info.warnings.append("Presentation LUT Shape INVERSE on MONOCHROME2 ignored")
    if padding is not None and padding.any():
        output[padding] = 0.0
        within = f" (lossy, within {tolerance})" if tolerance else ""
        info.steps.append(f"padding_to_black:{int(padding.sum())} px{within}")
    return output


def render_dicom(
    dataset: Dataset, info: ImageInfo, *, min_long_side: int | None = None
) -> tuple[np.ndarray, Reduction]:
    """Pixels of a dataset already vetted by ``check_dicom_header``: float32 (H, W) in [0, 1], and
    the reduction they were decoded at (one only when ``min_long_side`` allows it, see ``reduced``;
    the pixels are then ``reduction.shape(rows, columns)``)."""
    gray = info.photometric in ("MONOCHROME1", "MONOCHROME2")
    header = read_grayscale_header(dataset) if gray else None
    reducible = header is not None and _voi_from_header(header)
    stored, near, reduction = _decode_stored_values(
        dataset, info, min_long_side if reducible else None
    )  # (h, w) or (h, w, 3)
    expected_shape = reduction.shape(info.rows, info.columns)
    if stored.shape[:2] != expected_shape:
        raise InvalidDicomError(f"decoded pixels have shape {stored.shape[:2]}, header says {expected_shape}")
    if header is None:
        output = _colour_to_gray(dataset, stored, info)  # (H, W) in [0, 1]
    else:
        output = _render_gray(dataset, header, stored, near, info)  # (h, w) float32 in [0, 1]
    info.steps.append("scale:float32[0,1]")
    return np.clip(output, 0.0, 1.0, out=output).astype(np.float32, copy=False), reduction  # (h, w)
