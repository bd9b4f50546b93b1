"""Typed refusals of the pixel module.

Every refusal carries a stable machine-readable ``code`` (the service maps it to an HTTP status and
the bridge to a DICOM status) and a human ``detail``. Details are written by this module only and never
echo header values that could identify a patient (names, IDs, dates, UIDs).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERROR_CODES",
    "CorruptImageError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "ImagingError",
    "InvalidDicomError",
    "MultiFrameError",
    "NotAnImageError",
    "NotChestError",
    "UnsupportedMediaTypeError",
    "UnsupportedPhotometricError",
    "UnsupportedTransferSyntaxError",
    "UnsupportedViewError",
]


class ImagingError(ValueError):
    """Base class: an input the pixel module refuses, with a stable ``code``."""

    default_code: ClassVar[str] = "imaging_error"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as (class, code, detail): refusals cross from a decode process to the service."""
        return _rebuild, (type(self), self.code, self.detail)


def _rebuild(cls: type[ImagingError], code: str, detail: str) -> ImagingError:
    error = ImagingError.__new__(cls)
    ImagingError.__init__(error, code, detail)
    return error


class _CodedError(ImagingError):
    """A subclass whose code is fixed by its class, so callers pass only the detail."""

    def __init__(self, detail: str) -> None:
        super().__init__(self.default_code, detail)


class InvalidDicomError(_CodedError):
    """The bytes claim to be DICOM (or were declared so) but do not parse as a dataset."""

    default_code = "invalid_dicom"


class UnsupportedTransferSyntaxError(_CodedError):
    """No installed decoder handles the file's transfer syntax."""

    default_code = "unsupported_transfer_syntax"


class ImageTooLargeError(_CodedError):
    """Rows x Columns (read from the header, before decoding) exceed the allowed pixel count."""

    default_code = "image_too_large"


class ImageTooSmallError(_CodedError):
    """The image is smaller than a radiograph can be on its short side (an icon, a thumbnail, a pixel)."""

    default_code = "image_too_small"


class UnsupportedViewError(_CodedError):
    """A lateral (or otherwise non-frontal) view: the model is trained on frontal radiographs only."""

    default_code = "unsupported_view"


class MultiFrameError(_CodedError):
    """More than one frame: a chest radiograph is a single frame."""

    default_code = "multi_frame"


class NotAnImageError(_CodedError):
    """A valid DICOM object without pixel data (SR, KOS, presentation state, ...)."""

    default_code = "not_an_image"


class UnsupportedPhotometricError(_CodedError):
    """A colour image whose channels differ: converting it to gray would invent a radiograph."""

    default_code = "unsupported_photometric"


class CorruptImageError(_CodedError):
    """Truncated or damaged pixel data (the header parsed, the pixels did not)."""

    default_code = "corrupt_image"


class UnsupportedMediaTypeError(_CodedError):
    """Neither DICOM, PNG nor JPEG, or a declared media type that contradicts the bytes."""

    default_code = "unsupported_media_type"


class NotChestError(_CodedError):
    """The header's Body Part Examined names an anatomy other than the chest."""

    default_code = "not_chest"


ERROR_CODES: tuple[str, ...] = (
    InvalidDicomError.default_code,
    UnsupportedTransferSyntaxError.default_code,
    ImageTooLargeError.default_code,
    ImageTooSmallError.default_code,
    UnsupportedViewError.default_code,
    MultiFrameError.default_code,
    NotAnImageError.default_code,
    UnsupportedPhotometricError.default_code,
    CorruptImageError.default_code,
    UnsupportedMediaTypeError.default_code,
    NotChestError.default_code,
)
