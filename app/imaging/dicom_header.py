"""Parse DICOM bytes and vet the header BEFORE any pixel is decoded.

Everything that can be refused from the header is refused here: it is cheap, it protects the decoder
from decompression bombs, and the PACS bridge uses the same checks to reject objects at C-STORE time
without decoding them.
"""

from __future__ import annotations

import logging
import re
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from app.imaging.errors import (
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
from app.imaging.info import ImageInfo
from app.imaging.views import ViewKind, view_kind

__all__ = [
    "COLOUR_PHOTOMETRICS",
    "GRAY_PHOTOMETRICS",
    "check_dicom_header",
    "read_dicom",
]

logger = logging.getLogger(__name__)

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
_IDENTIFYING_KEYWORDS = (
    "SOPClassUID",
    "Modality",
    "PixelData",
    "Rows",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)
_PROJECTION_MODALITIES = frozenset({"CR", "DX", "RG", "DR", "OT", "SC"})


def read_dicom(data: bytes) -> Dataset:
    """Parse DICOM bytes, with or without the 128-byte preamble, into a dataset.

    Parser messages may quote element values (UIDs, names), so they are never passed on: the
    refusal says only what kind of failure it was.
    """
    try:
        dataset = pydicom.dcmread(BytesIO(data), force=True)
    except Exception as exc:  # untrusted input: any parser failure is a refusal, not a crash
        logger.debug("DICOM parse failed: %s", type(exc).__name__)
        raise InvalidDicomError(f"the data do not parse as DICOM ({type(exc).__name__})") from None
    if not any(keyword in dataset for keyword in _IDENTIFYING_KEYWORDS):
        # force=True "parses" almost any bytes into nonsense elements; a real object has some of these.
        raise InvalidDicomError("the data do not parse as a DICOM object (no SOP class, modality or image)")
    return dataset


def looks_like_image_dataset(dataset: Dataset) -> bool:
    """True when a force-parsed dataset is a plausible image (used to sniff preamble-less files)."""
    return "PixelData" in dataset and "Rows" in dataset and "Columns" in dataset


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


def _check_decoder(uid: UID) -> None:
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
    codes = dataset.get("ViewCodeSequence")
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
    if "Rows" in dataset and "Columns" in dataset:
        raise CorruptImageError(
            "the header describes an image (Rows, Columns) but the pixel data are missing: "
            "the file is probably truncated"
        )
    has_float = "FloatPixelData" in dataset or "DoubleFloatPixelData" in dataset
    kind = " (only float pixel data)" if has_float else ""
    raise NotAnImageError(f"the DICOM object has no integer pixel data{kind}; it is not an image")


def _positive_int(dataset: Dataset, keyword: str) -> int:
    value = dataset.get(keyword)
    try:
        number = int(value) if value is not None else 0
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise InvalidDicomError(f"missing or invalid {keyword} in the image header")
    return number


def check_dicom_header(
    dataset: Dataset,
    *,
    max_pixels: int = 50_000_000,
    allow_lateral: bool = False,
    check_body_part: bool = True,
    pixel_data_read: bool = True,
) -> ImageInfo:
    """Refuse what the header alone rules out; return the image facts for a decode.

    Order: pixel data, multi-frame, size, colour model, transfer syntax, body part, view. Raises an
    ``ImagingError`` subclass; on success ``info.steps`` is empty and ``info.warnings`` holds the
    assumptions made. Pass ``pixel_data_read=False`` for a dataset read with
    ``stop_before_pixels=True`` (the bridge's C-STORE check): absent pixel data is then expected.
    """
    if pixel_data_read:
        _check_pixel_data_present(dataset)
    frames_value = dataset.get("NumberOfFrames", 1)
    try:
        frames = int(frames_value) if frames_value not in (None, "") else 1
    except (TypeError, ValueError):
        raise InvalidDicomError("invalid NumberOfFrames in the image header") from None
    if frames > 1:
        raise MultiFrameError(f"{frames} frames: a single-frame radiograph is required")
    rows = _positive_int(dataset, "Rows")
    columns = _positive_int(dataset, "Columns")
    if rows * columns > max_pixels:
        raise ImageTooLargeError(
            f"{rows} x {columns} = {rows * columns} pixels exceeds the limit of {max_pixels}"
        )
    photometric = _code_string(dataset, "PhotometricInterpretation") or ""
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    if photometric in GRAY_PHOTOMETRICS:
        if samples != 1:
            raise InvalidDicomError(f"{photometric} with {samples} samples per pixel")
    elif photometric not in COLOUR_PHOTOMETRICS:
        label = photometric if re.fullmatch(r"[A-Z0-9_ ]{1,16}", photometric) else "missing or invalid"
        raise UnsupportedPhotometricError(f"photometric interpretation {label} is not supported")
    transfer_syntax = _ensure_transfer_syntax(dataset)
    _check_decoder(transfer_syntax)

    warnings: list[str] = []
    body_part = _code_string(dataset, "BodyPartExamined")
    if check_body_part:
        _check_body_part(body_part)
    view = _view_position(dataset)
    _check_view(view, allow_lateral, warnings)
    modality = _code_string(dataset, "Modality")
    if modality is not None and modality not in _PROJECTION_MODALITIES:
        warnings.append(f"modality {modality} is not a projection radiograph")
    bits_stored = dataset.get("BitsStored")
    return ImageInfo(
        format="dicom",
        rows=rows,
        columns=columns,
        photometric=photometric,
        view_position=view,
        transfer_syntax=str(transfer_syntax),
        transfer_syntax_name=_transfer_syntax_label(transfer_syntax),
        bits_stored=int(bits_stored) if bits_stored is not None else None,
        modality=modality,
        body_part=body_part,
        warnings=warnings,
    )
