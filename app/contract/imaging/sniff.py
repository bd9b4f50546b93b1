"""Decide what the bytes are: the content decides, a declared media type is only a cross-check.

Clients mislabel uploads all the time (``application/octet-stream``, a DICOM sent as ``image/png``);
trusting the label would feed bytes to the wrong decoder and produce confusing errors, so magic
numbers win and a contradiction is reported clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from app.contract.imaging.errors import UnsupportedMediaTypeError

__all__ = ["MEDIA_TYPES", "SniffedFormat", "declared_format", "sniff_format"]

SniffedFormat = Literal["dicom", "png", "jpeg"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_DICOM_PREAMBLE_LENGTH = 128
_DICOM_MAGIC = b"DICM"

MEDIA_TYPES: Mapping[str, SniffedFormat] = MappingProxyType(
    {
        "application/dicom": "dicom",
        "image/png": "png",
        "image/jpeg": "jpeg",
        "image/jpg": "jpeg",  # non-standard but common
    }
)
# Labels that carry no information about the content: sniff instead.
_GENERIC_MEDIA_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})


def declared_format(media_type: str | None) -> SniffedFormat | None:
    """Map a (possibly parameterised) media type to a format; None when it says nothing."""
    if media_type is None:
        return None
    base = media_type.split(";", 1)[0].strip().lower()
    if base in _GENERIC_MEDIA_TYPES:
        return None
    if base not in MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"media type {base!r} is not supported; send application/dicom, image/png or image/jpeg"
        )
    return MEDIA_TYPES[base]


def sniff_format(data: bytes) -> SniffedFormat | None:
    """Format from magic numbers, or None when the bytes carry none (e.g. DICOM without preamble)."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    end = _DICOM_PREAMBLE_LENGTH + len(_DICOM_MAGIC)
    if len(data) >= end and data[_DICOM_PREAMBLE_LENGTH:end] == _DICOM_MAGIC:
        return "dicom"
    return None
