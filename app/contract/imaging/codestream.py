"""Read the image size a JPEG / JPEG-LS / JPEG 2000 codestream declares, without decoding it.

The DICOM header's Rows x Columns is checked against ``max_pixels``, but a codec allocates what the
*codestream* declares. A small header wrapping a huge codestream is a decompression bomb, so the two
sizes must agree before any decoder runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

__all__ = ["J2kHeader", "codestream_size", "j2k_header", "jpegls_near"]

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
_J2K_SIZ_FIXED = 38  # Lsiz .. Csiz: the SIZ segment before its per-component bytes
_J2K_COD, _J2K_COC, _J2K_SOT = 0x52, 0x53, 0x90
_J2K_MAX_MAIN_SEGMENTS = 256  # a real main header has a handful; anything longer is not parsed further


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


@dataclass(frozen=True)
class J2kHeader:
    """What the main header of a raw JPEG 2000 codestream says about its first component."""

    rows: int
    columns: int
    components: int
    precision: int  # bits per sample of component 0
    signed: bool
    levels: int  # wavelet decomposition levels of component 0 (resolution levels - 1)


def _j2k_levels(stream: bytes, position: int, components: int) -> int | None:
    """Decomposition levels of component 0 from the main header's COD, overridden by a COC for
    component 0; None when no COD is found before the first tile (SOT) or the header is damaged."""
    levels: int | None = None
    override: int | None = None
    component_bytes = 1 if components < 257 else 2
    for _ in range(_J2K_MAX_MAIN_SEGMENTS):
        if position + 4 > len(stream) or stream[position] != 0xFF:
            return None
        marker = stream[position + 1]
        if marker == _J2K_SOT:
            return override if override is not None else levels
        (length,) = struct.unpack(">H", stream[position + 2 : position + 4])
        body = position + 4
        if marker == _J2K_COD and body + 5 <= len(stream):
            levels = stream[body + 5]  # Scod, progression, layers (2), MCT, then SPcod: levels first
        elif marker == _J2K_COC and body + component_bytes + 2 <= len(stream):
            component = int.from_bytes(stream[body : body + component_bytes], "big")
            if component == 0:
                override = stream[body + component_bytes + 1]  # after Scoc: SPcoc, levels first
        position += 2 + length
    return None


def j2k_header(stream: bytes) -> J2kHeader | None:
    """Size, precision, signedness and decomposition levels of a raw JPEG 2000 codestream (one that
    starts with SOC + SIZ, as DICOM requires); None when it does not or the header is damaged."""
    if not stream.startswith(_J2K_SOC_SIZ) or len(stream) < 4 + _J2K_SIZ_FIXED + 3:
        return None
    siz = 4
    (length,) = struct.unpack(">H", stream[siz : siz + 2])
    x_size, y_size, x_offset, y_offset = struct.unpack(">IIII", stream[siz + 4 : siz + 20])
    (components,) = struct.unpack(">H", stream[siz + 36 : siz + 38])
    if components < 1 or length < _J2K_SIZ_FIXED + 3 * components:
        return None
    ssiz = stream[siz + 38]
    levels = _j2k_levels(stream, siz + length, components)
    if levels is None:
        return None
    return J2kHeader(
        rows=int(y_size - y_offset),
        columns=int(x_size - x_offset),
        components=int(components),
        precision=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        levels=int(levels),
    )


def codestream_size(frame: bytes, transfer_syntax: str) -> tuple[int, int] | None:
    """The (rows, columns) an encapsulated frame declares, or None when its format has no size
    header (RLE, video) or the header cannot be read (the decoder will then report the damage)."""
    if transfer_syntax in JPEGTransferSyntaxes or transfer_syntax in JPEGLSTransferSyntaxes:
        return _jpeg_size(frame) if frame.startswith(_JPEG_SOI) else None
    if transfer_syntax in JPEG2000TransferSyntaxes:
        return _j2k_size(frame)
    return None
