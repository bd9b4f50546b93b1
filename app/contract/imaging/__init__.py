"""The pixel module: decode DICOM/PNG/JPEG into the pixel contract and letterbox it for the model.

Shared by the torch-free service, the PACS bridge (header checks) and training, so it depends only
on numpy, pydicom (and its decoder plugins) and Pillow. See docs/contracts.md and docs/imaging.md.
"""

from app.contract.imaging.decode import DEFAULT_MAX_PIXELS, MIN_SIDE, decode_bytes, decode_path
from app.contract.imaging.dicom_header import check_dicom_header
from app.contract.imaging.dicom_read import read_dicom
from app.contract.imaging.errors import (
    ERROR_CODES,
    CorruptImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    ImagingError,
    InvalidDicomError,
    MultiFrameError,
    NotAnImageError,
    NotChestError,
    UnsupportedMediaTypeError,
    UnsupportedPhotometricError,
    UnsupportedTransferSyntaxError,
    UnsupportedViewError,
)
from app.contract.imaging.geometry import NO_REDUCTION, Letterbox, Reduction, letterbox, resize
from app.contract.imaging.info import DecodedImage, ImageInfo
from app.contract.imaging.preprocessing import (
    DECODE_MARGIN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WASHED_OUT_SPAN,
    Preprocessed,
    PreprocessingSpec,
    normalise,
    preprocess,
    stretch_washed_out,
)
from app.contract.imaging.privacy import quiet_pydicom_value_messages

__all__ = [
    "DECODE_MARGIN",
    "DEFAULT_MAX_PIXELS",
    "ERROR_CODES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_SIDE",
    "NO_REDUCTION",
    "WASHED_OUT_SPAN",
    "CorruptImageError",
    "DecodedImage",
    "ImageInfo",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "ImagingError",
    "InvalidDicomError",
    "Letterbox",
    "MultiFrameError",
    "NotAnImageError",
    "NotChestError",
    "Preprocessed",
    "PreprocessingSpec",
    "Reduction",
    "UnsupportedMediaTypeError",
    "UnsupportedPhotometricError",
    "UnsupportedTransferSyntaxError",
    "UnsupportedViewError",
    "check_dicom_header",
    "decode_bytes",
    "decode_path",
    "letterbox",
    "normalise",
    "preprocess",
    "quiet_pydicom_value_messages",
    "read_dicom",
    "resize",
    "stretch_washed_out",
]
