"""The grayscale PNG encoder: any decoder reads back exactly the pixels written."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from app.gray_png import encode_gray8, quantise


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "L" and image.format == "PNG"
    return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (5, 3), (256, 300), (1024, 1024)])
def test_pixels_round_trip_through_pillow(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(_decode(encode_gray8(pixels)), pixels)


def test_row_differences_wrap_modulo_256() -> None:
    """The Sub filter stores x - left mod 256: a 255 -> 0 -> 255 edge must survive."""
    pixels = np.tile(np.array([255, 0, 255, 1, 254, 0], dtype=np.uint8), (4, 1))
    assert np.array_equal(_decode(encode_gray8(pixels)), pixels)


def test_smooth_heat_maps_come_out_smaller_than_pillows_own_encoding() -> None:
    ramp = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    heat = quantise(np.outer(ramp, ramp[::-1]), levels=64)  # (1024, 1024), smooth like a heat map
    ours = encode_gray8(heat)
    buffer = io.BytesIO()
    Image.fromarray(heat, mode="L").save(buffer, format="PNG", compress_level=1)
    assert np.array_equal(_decode(ours), heat)
    assert len(ours) < len(buffer.getvalue())


def test_the_chunks_are_well_formed() -> None:
    data = encode_gray8(np.zeros((2, 3), np.uint8))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    tags = []
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        tag, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : offset + 12 + length], "big")
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        tags.append(tag)
        offset += 12 + length
    assert tags == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 3), np.uint8), np.zeros((0, 4), np.uint8)]
)
def test_other_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_gray8(bad)


@pytest.mark.parametrize("levels", [2, 64, 256])
def test_quantise_spreads_levels_over_the_full_byte_range(levels: int) -> None:
    gray = (
        np.random.default_rng(levels).random((50, 60)).astype(np.float32) * 1.2 - 0.1
    )  # some outside [0, 1]
    expected = np.rint(np.rint(np.clip(gray, 0.0, 1.0) * (levels - 1)) * (255.0 / (levels - 1)))
    got = quantise(gray, levels)
    assert got.dtype == np.uint8 and np.array_equal(got, expected.astype(np.uint8))
    assert len(np.unique(got)) <= levels and got.min() == 0 and got.max() == 255


def test_quantise_maps_masks_to_0_and_255() -> None:
    mask = np.array([[True, False], [False, True]])
    assert quantise(mask).tolist() == [[255, 0], [0, 255]]


@pytest.mark.parametrize("levels", range(2, 257))
def test_every_step_of_every_level_count_takes_its_gray_value(levels: int) -> None:
    """Both paths (in-place arithmetic and table) give step k the gray rint(k * 255 / (levels - 1)),
    including the level counts where float32 rounds a half step the other way."""
    steps = np.arange(levels, dtype=np.float64)
    gray = (steps / (levels - 1)).astype(np.float32)  # (levels,): the centre of every step
    expected = np.rint(steps * (255.0 / (levels - 1))).astype(np.uint8)
    assert np.array_equal(quantise(gray[None, :], levels)[0], expected)
