"""Parse DICOM bytes and vet the header BEFORE any pixel is decoded.

Everything that can be refused from the header is refused here: it is cheap, it protects the decoder
from decompression bombs, and the PACS bridge uses the same checks to reject objects at C-STORE time
without decoding them.
"""

from __future__ import annotations

import re

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGExtended12Bit

from app.contract.imaging.dicom_grayscale import read_grayscale_header
from app.contract.imaging.dicom_read import looks_like_image_dataset, read_dicom
from app.contract.imaging.dicom_values import optional_int, required_int, sequence_items
from app.contract.imaging.errors import (
    CorruptImageError,
    ImageTooLargeError,
    InvalidDicomError,
    MultiFrameError,
    NotAnImageError,
    NotChestError,
    UnsupportedPhotometricError,
    UnsupportedTransferSyntaxError,
    UnsupportedViewError,
)
from app.contract.imaging.info import ImageInfo
from app.contract.imaging.jpeg_extended import ensure_registered
from app.contract.vocabulary import ViewKind, view_kind

__all__ = [
    "COLOUR_PHOTOMETRICS",
    "GRAY_PHOTOMETRICS",
    "check_dicom_header",
    "looks_like_image_dataset",
    "read_dicom",
]

GRAY_PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2"})
# Colour encodings pydicom can turn into RGB; accepted only when the result is effectively gray.
COLOUR_PHOTOMETRICS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR"}
)

# Body Part Examined terms (CID 4031 and common variants) that are clearly not a chest radiograph.
# A deny-list, not an allow-list: CHEST, THORAX, empty and unknown terms are all accepted.
_NOT_CHEST_TERMS = frozenset(
    {
        "ABDOMEN", "ANKLE", "ARM", "BRAIN", "BREAST", "CALCANEUS", "CLAVICLE", "COCCYX", "CSPINE",
        "ELBOW", "EXTREMITY", "FACE", "FEMUR", "FIBULA", "FINGER", "FOOT", "FOREARM", "HAND", "HEAD",
        "HEEL", "HIP", "HUMERUS", "JAW", "KIDNEY", "KNEE", "LEG", "LSPINE", "MANDIBLE", "NECK",
        "ORBIT", "PATELLA", "PELVIS", "RADIUS", "SACRUM", "SCAPULA", "SHOULDER", "SKULL", "SPINE",
        "SSPINE", "STERNUM", "TIBIA", "TMJ", "TOE", "TSPINE", "ULNA", "WRIST", "ZYGOMA",
    }
)  # fmt: skip
_CHEST_TERMS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS"})
_PROJECTION_MODALITIES = frozenset({"CR", "DX", "RG", "DR", "OT", "SC"})


def _ensure_transfer_syntax(dataset: Dataset) -> UID:
    """The transfer syntax, deduced from how the dataset was read when there is no file meta.

    Preamble-less files usually lack group 0002; their encoding is only known from parsing.
    """
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    if "PixelData" in dataset and dataset["PixelData"].is_undefined_length:
        raise UnsupportedTransferSyntaxError("compressed pixel data without a transfer syntax in the header")
    implicit_vr, little_endian = dataset.original_encoding
    if not little_endian:
        raise UnsupportedTransferSyntaxError("big-endian data without a transfer syntax in the header")
    deduced = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
    if meta is None:
        meta = FileMetaDataset()
        dataset.file_meta = meta
    meta.TransferSyntaxUID = deduced
    return deduced


def _transfer_syntax_label(uid: UID) -> str:
    """A name safe for messages: the standard name, never a raw (possibly private) UID."""
    return uid.name if uid.is_transfer_syntax and uid.name != str(uid) else "an unrecognised transfer syntax"


def _check_decoder(uid: UID, bits_stored: int) -> None:
    if uid == JPEGExtended12Bit and bits_stored > 8 and not ensure_registered():
        raise UnsupportedTransferSyntaxError(
            "no pixel decoder is installed for 12-bit JPEG Extended (install imagecodecs)"
        )
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(
            f"no pixel decoder exists for {_transfer_syntax_label(uid)}"
        ) from None
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"no pixel decoder is installed for {_transfer_syntax_label(uid)}"
        )


def _code_string(dataset: Dataset, keyword: str) -> str | None:
    """Upper-cased, stripped string value of a (first) element, or None when absent or empty."""
    value = dataset.get(keyword)
    if value is None:
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else ""
    text = str(value).strip().upper()
    return text or None


def _view_position(dataset: Dataset) -> str | None:
    """ViewPosition, falling back to the View Code Sequence meaning (e.g. 'left lateral')."""
    view = _code_string(dataset, "ViewPosition")
    if view is not None:
        return view
    codes = sequence_items(dataset, "ViewCodeSequence")
    if codes:
        meaning = codes[0].get("CodeMeaning")
        if meaning:
            return str(meaning).strip().upper() or None
    return None


def _check_view(view: str | None, allow_lateral: bool, warnings: list[str]) -> None:
    kind = view_kind(view)
    if kind is ViewKind.UNSTATED:
        warnings.append("no view position in header: assumed frontal")
    elif kind in (ViewKind.LATERAL, ViewKind.OBLIQUE):
        if not allow_lateral:
            raise UnsupportedViewError(
                f"{kind} view ({view}): the model reads frontal (PA/AP) chest radiographs only"
            )
        warnings.append(f"{kind} view ({view}) accepted on request; the model is trained on frontal views")
    elif kind is ViewKind.DECUBITUS:
        warnings.append(f"decubitus view ({view}): the patient lay on one side")


def _check_body_part(body_part: str | None) -> None:
    if body_part is None:
        return
    words = set(re.split(r"[^A-Z]+", body_part)) - {""}
    if words & _CHEST_TERMS:
        return
    named = sorted(words & _NOT_CHEST_TERMS)
    if named:
        raise NotChestError(f"Body Part Examined names {', '.join(named)}, not the chest")


def _check_pixel_data_present(dataset: Dataset) -> None:
    """No Pixel Data: a truncated image file when the image header is there, else a non-image object."""
    if "PixelData" in dataset:
        return
    if "FloatPixelData" in dataset or "DoubleFloatPixelData" in dataset:
        raise NotAnImageError(
            "the DICOM object holds float pixel data (a parametric map, not a radiograph); "
            "it is not an image this service reads"
        )
    if "Rows" in dataset and "Columns" in dataset:
        raise CorruptImageError(
            "the header describes an image (Rows, Columns) but the pixel data are missing: "
            "the file is probably truncated"
        )
    raise NotAnImageError("the DICOM object has no pixel data; it is not an image")


def _check_pixel_description(dataset: Dataset, photometric: str, warnings: list[str]) -> int:
    """Validate the Image Pixel module's numbers (and, for gray images, the grayscale pipeline's
    LUTs, windows, rescale and padding); returns Bits Stored."""
    bits_allocated = required_int(dataset, "BitsAllocated", 1, 64)
    if bits_allocated != 1 and bits_allocated % 8:
        raise InvalidDicomError("BitsAllocated in the image header is not 1 or a multiple of 8")
    bits_stored = required_int(dataset, "BitsStored", 1, bits_allocated)
    if optional_int(dataset, "PixelRepresentation") not in (None, 0, 1):
        raise InvalidDicomError("PixelRepresentation in the image header is not 0 or 1")
    if photometric in GRAY_PHOTOMETRICS:
        warnings.extend(read_grayscale_header(dataset).notes)
    return bits_stored


def check_dicom_header(
    dataset: Dataset,
    *,
    max_pixels: int = 50_000_000,
    allow_lateral: bool = False,
    check_body_part: bool = True,
    pixel_data_read: bool = True,
) -> ImageInfo:
    """Refuse what the header alone rules out; return the image facts for a decode.

    Order: pixel data, multi-frame, size, colour model, pixel description (numbers, LUTs, windows,
    rescale, padding), transfer syntax, body part, view. Raises an
    ``ImagingError`` subclass; on success ``info.steps`` is empty and ``info.warnings`` holds the
    assumptions made. Pass ``pixel_data_read=False`` for a dataset read with
    ``stop_before_pixels=True`` (the bridge's C-STORE check): absent pixel data is then expected.
    """
    if pixel_data_read:
        _check_pixel_data_present(dataset)
    frames = optional_int(dataset, "NumberOfFrames")
    if frames is not None and frames > 1:
        raise MultiFrameError(f"{frames} frames: a single-frame radiograph is required")
    if frames is not None and frames < 1:
        raise InvalidDicomError("NumberOfFrames in the image header is below 1")
    rows = required_int(dataset, "Rows", 1, 65535)
    columns = required_int(dataset, "Columns", 1, 65535)
    if rows * columns > max_pixels:
        raise ImageTooLargeError(
            f"{rows} x {columns} = {rows * columns} pixels exceeds the limit of {max_pixels}"
        )
    photometric = _code_string(dataset, "PhotometricInterpretation") or ""
    if photometric not in GRAY_PHOTOMETRICS and photometric not in COLOUR_PHOTOMETRICS:
        label = photometric if re.fullmatch(r"[A-Z0-9_ ]{1,16}", photometric) else "missing or invalid"
        raise UnsupportedPhotometricError(f"photometric interpretation {label} is not supported")
    samples = optional_int(dataset, "SamplesPerPixel") or 1
    expected_samples = 1 if photometric in GRAY_PHOTOMETRICS or photometric == "PALETTE COLOR" else 3
    if samples != expected_samples:
        raise InvalidDicomError(f"{photometric} with {samples} samples per pixel")
    transfer_syntax = _ensure_transfer_syntax(dataset)
    warnings: list[str] = []
    bits_stored = _check_pixel_description(dataset, photometric, warnings)
    _check_decoder(transfer_syntax, bits_stored)

    body_part = _code_string(dataset, "BodyPartExamined")
    if check_body_part:
        _check_body_part(body_part)
    view = _view_position(dataset)
    _check_view(view, allow_lateral, warnings)
    modality = _code_string(dataset, "Modality")
    if modality is not None and modality not in _PROJECTION_MODALITIES:
        warnings.append(f"modality {modality} is not a projection radiograph")
    return ImageInfo(
        format="dicom",
        rows=rows,
        columns=columns,
        photometric=photometric,
        view_position=view,
        transfer_syntax=str(transfer_syntax),
        transfer_syntax_name=_transfer_syntax_label(transfer_syntax),
        bits_stored=bits_stored,
        modality=modality,
        body_part=body_part,
        warnings=warnings,
    )
