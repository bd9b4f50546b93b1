"""Read the image size a JPEG / JPEG-LS / JPEG 2000 codestream declares, without decoding it.

The DICOM header's Rows x Columns is checked against ``max_pixels``, but a codec allocates what the
*codestream* declares. A small header wrapping a huge codestream is a decompression bomb, so the two
sizes must agree before any decoder runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

__all__ = ["codestream_size", "jpegls_near"]

_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers carrying (precision, height, width): baseline/extended/progressive/lossless,
# arithmetic variants, and JPEG-LS SOF55 (0xF7). Not DHT (C4), JPG (C8) or DAC (CC).
_JPEG_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
)
_JPEG_SOS = 0xDA
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length field
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
_J2K_SEARCH_LIMIT = 4096  # a JP2 wrapper puts a few boxes before the codestream


def _jpeg_segments(stream: bytes) -> Iterator[tuple[int, int]]:
    """(marker, position) of each marker segment up to and including the first start of scan."""
    position = len(_JPEG_SOI)
    while position + 4 <= len(stream):
        if stream[position] != 0xFF:
            return  # lost sync: not a marker where one must be
        marker = stream[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        yield marker, position
        if marker == _JPEG_SOS:
            return
        (length,) = struct.unpack(">H", stream[position + 2 : position + 4])
        position += 2 + length


def _jpeg_size(stream: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the first SOF segment of a JPEG or JPEG-LS stream."""
    for marker, position in _jpeg_segments(stream):
        if marker == _JPEG_SOS:
            return None  # start of scan before any frame header: malformed
        if marker in _JPEG_SOF_MARKERS:
            if position + 9 > len(stream):
                return None
            rows, columns = struct.unpack(">HH", stream[position + 5 : position + 9])
            return int(rows), int(columns)
    return None


def jpegls_near(frame: bytes) -> int | None:
    """The NEAR parameter of a JPEG-LS frame's first scan: the largest error of any decoded sample
    (0 = lossless), or None when the stream has no readable scan header (PS3.5 A.4.3, T.87 C.2.3)."""
    if not frame.startswith(_JPEG_SOI):
        return None
    for marker, position in _jpeg_segments(frame):
        if marker == _JPEG_SOS:
            if position + 5 > len(frame):
                return None
            components = frame[position + 4]
            near_at = position + 5 + 2 * components
            return int(frame[near_at]) if near_at < len(frame) else None
    return None


def _j2k_size(stream: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the SIZ marker of a JPEG 2000 codestream (raw or JP2-wrapped)."""
    start = stream.find(_J2K_SOC_SIZ, 0, _J2K_SEARCH_LIMIT)
    if start < 0:
        return None
    siz = start + len(_J2K_SOC_SIZ) + 4  # skip Lsiz and Rsiz
    if siz + 16 > len(stream):
        return None
    x_size, y_size, x_offset, y_offset = struct.unpack(">IIII", stream[siz : siz + 16])
    return int(y_size - y_offset), int(x_size - x_offset)


def codestream_size(frame: bytes, transfer_syntax: str) -> tuple[int, int] | None:
    """The (rows, columns) an encapsulated frame declares, or None when its format has no size
    header (RLE, video) or the header cannot be read (the decoder will then report the damage)."""
    if transfer_syntax in JPEGTransferSyntaxes or transfer_syntax in JPEGLSTransferSyntaxes:
        return _jpeg_size(frame) if frame.startswith(_JPEG_SOI) else None
    if transfer_syntax in JPEG2000TransferSyntaxes:
        return _j2k_size(frame)
    return None
