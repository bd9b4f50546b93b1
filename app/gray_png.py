"""8-bit grayscale PNG encoding for heat maps, masks and rendered films.

Why not Pillow's encoder: it picks a filter per row adaptively and then deflates, about twice the time
of what these images need. They are smooth (a heat map is a 14 x 14 grid resized to the original film,
quantised to 64 levels) or two-valued (masks), so the PNG "Sub" filter on every row turns them into
long runs of zeros that a fast deflate level compresses smaller than Pillow's output, at about half
its time (docs/benchmarks.md, "Multipart uploads and heat-map encoding"). A `/ground` answer carries
one full-resolution PNG per finding, so this is much of its postprocessing. The deflate is ISA-L's
(`isal`, level 1): on a 1024 x 1024 heat map 1.4 ms and 129 KB against zlib's 5.3 ms and 142 KB at its
fastest level, the same pixels (docs/benchmarks.md, "Postprocessing").
"""

from __future__ import annotations

import functools
import struct
import zlib

import numpy as np
from isal import isal_zlib

__all__ = ["encode_gray8", "quantise"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_SUB = 1
_DEFLATE_LEVEL = 1  # ISA-L's levels are 0-3


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_gray8(pixels: np.ndarray) -> bytes:
    """(H, W) uint8 -> the bytes of an 8-bit grayscale PNG, every row with the "Sub" filter."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 array, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape
    if height == 0 or width == 0:
        raise ValueError("a PNG needs at least one pixel")
    rows = np.empty((height, width + 1), dtype=np.uint8)  # (H, 1 + W): filter byte, then the row
    rows[:, 0] = _FILTER_SUB
    rows[:, 1] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 2:])  # wraps modulo 256, as PNG defines
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", isal_zlib.compress(rows.data, _DEFLATE_LEVEL)),  # the array's buffer: no copy
            _chunk(b"IEND", b""),
        )
    )


def quantise(gray: np.ndarray, levels: int = 256) -> np.ndarray:
    """(H, W) float in [0, 1] (clipped) or bool -> uint8 with `levels` evenly spaced values over 0..255.

    Step k becomes gray rint(k * 255 / (levels - 1)). Where float32 arithmetic gives exactly that for
    every step (`_arithmetic_exact`: 64 levels included) the gray is computed in place, about three
    times faster on a full-resolution heat map than the table lookup used for the other level counts.
    """
    if gray.dtype == np.bool_:
        return gray.astype(np.uint8) * np.uint8(255)
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be 2..256, got {levels}")
    steps = np.multiply(gray, levels - 1, dtype=np.float32)  # (H, W), new: worked on in place
    np.clip(steps, 0.0, levels - 1, out=steps)
    np.rint(steps, out=steps)  # step k, 0..levels - 1
    if _arithmetic_exact(levels):
        steps *= _gray_per_step(levels)
        np.rint(steps, out=steps)
        return steps.astype(np.uint8)
    return _level_table(levels)[steps.astype(np.uint8)]


def _gray_per_step(levels: int) -> np.float32:
    return np.float32(255.0 / (levels - 1))


@functools.cache
def _arithmetic_exact(levels: int) -> bool:
    """True when float32 rint(k * (255 / (levels - 1))) equals the level table for every step k: the
    in-place path only ever multiplies whole steps, so checking them all proves it exact."""
    steps = np.arange(levels, dtype=np.float32)
    grays = np.rint(steps * _gray_per_step(levels)).astype(np.uint8)
    return bool(np.array_equal(grays, _level_table(levels)))


@functools.cache
def _level_table(levels: int) -> np.ndarray:
    """(levels,) uint8: step k -> its gray value, the levels spread evenly over 0..255 (read-only)."""
    table = np.rint(np.arange(levels) * (255.0 / (levels - 1))).astype(np.uint8)
    table.flags.writeable = False
    return table
