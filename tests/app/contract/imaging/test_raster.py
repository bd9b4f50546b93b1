"""PNG and JPEG decoding, the colour rule, header-first size limits and media-type sniffing."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from app.contract.imaging import ImagingError, decode_bytes
from tests.support.images import png_header_only, raster_bytes


def _refusal(data: bytes, media_type: str | None = None, **options: object) -> ImagingError:
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data, media_type, **options)  # type: ignore[arg-type]
    return caught.value


def _ramp8() -> np.ndarray:
    return np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # (64, 64)


def test_png_8_bit_gray() -> None:
    image = decode_bytes(raster_bytes(_ramp8()), "image/png")

    np.testing.assert_allclose(image.pixels, _ramp8() / 255.0, atol=1e-6)
    assert image.pixels.dtype == np.float32
    assert (image.info.format, image.info.photometric, image.info.bits_stored) == ("png", "MONOCHROME2", 8)
    assert (image.info.rows, image.info.columns) == (64, 64)
    assert "no view position in header: assumed frontal" in image.info.warnings


def test_png_16_bit_gray_keeps_full_precision() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))  # (64, 64)
    ramp[0, 1] = 1  # a difference invisible at 8 bits
    image = decode_bytes(raster_bytes(ramp))

    assert image.info.bits_stored == 16
    np.testing.assert_allclose(image.pixels, ramp / 65535.0, atol=1e-7)
    assert image.pixels[0, 1] > 0.0


def test_png_16_bit_with_12_bit_content_warns() -> None:
    image = decode_bytes(raster_bytes(np.full((64, 64), 4000, dtype=np.uint16)))
    assert any("12 bits" in warning for warning in image.info.warnings)


def test_jpeg_gray() -> None:
    smooth = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))  # (64, 64)
    image = decode_bytes(raster_bytes(smooth, "JPEG", quality=95), "image/jpeg")

    assert image.info.format == "jpeg"
    assert np.abs(image.pixels - smooth / 255.0).max() < 0.05


def test_rgb_png_that_is_gray_is_accepted() -> None:
    rgb = np.repeat(_ramp8()[:, :, None], 3, axis=2)  # (64, 64, 3)
    image = decode_bytes(raster_bytes(rgb))

    np.testing.assert_allclose(image.pixels, _ramp8() / 255.0, atol=1e-6)
    assert image.info.photometric == "RGB"
    assert "colour_to_gray:channels agree" in image.info.steps


def test_rgb_jpeg_of_gray_content_is_accepted_despite_chroma_noise() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    image = decode_bytes(raster_bytes(rgb, "JPEG", quality=90))
    assert image.pixels.shape == (64, 64)


def test_truly_coloured_png_is_refused() -> None:
    rgb = np.zeros((8, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    assert _refusal(raster_bytes(rgb)).code == "unsupported_photometric"


def test_gray_image_with_a_coloured_overlay_is_refused() -> None:
    rgb = np.repeat(np.full((64, 64), 120, dtype=np.uint8)[:, :, None], 3, axis=2)
    rgb[10:30, 10:30] = (255, 255, 0)  # a yellow annotation box: 10% of the pixels
    assert _refusal(raster_bytes(rgb)).code == "unsupported_photometric"


def test_gray_palette_png_is_accepted() -> None:
    palette_image = Image.fromarray(_ramp8()).convert("P")
    buffer = BytesIO()
    palette_image.save(buffer, format="PNG")
    image = decode_bytes(buffer.getvalue())

    np.testing.assert_allclose(image.pixels, _ramp8() / 255.0, atol=1e-6)
    assert image.info.steps[0] == "palette_lut"


def test_rgba_alpha_is_ignored_with_a_warning() -> None:
    rgba = np.dstack([np.repeat(_ramp8()[:, :, None], 3, axis=2), np.full((64, 64), 128, dtype=np.uint8)])
    image = decode_bytes(raster_bytes(rgba))
    assert "transparency (alpha channel) ignored" in image.info.warnings


def test_exif_orientation_is_applied() -> None:
    tall = np.zeros((128, 64), dtype=np.uint8)
    tall[0, :] = 255  # the top row is white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = BytesIO()
    Image.fromarray(tall).save(buffer, format="JPEG", quality=100, exif=exif)
    image = decode_bytes(buffer.getvalue())

    assert image.pixels.shape == (64, 128)
    assert image.pixels[:, -1].mean() > 0.8  # the white edge is now on the right
    assert "exif_orientation:6" in image.info.steps


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (30000, 30000)])
def test_oversized_png_is_refused_from_its_header(width: int, height: int) -> None:
    """8000^2 trips our limit; 30000^2 also trips Pillow's own bomb guard: both map to one code."""
    error = _refusal(png_header_only(width, height))
    assert error.code == "image_too_large"


def test_max_pixels_applies_to_png() -> None:
    assert _refusal(raster_bytes(_ramp8()), max_pixels=100).code == "image_too_large"


def test_truncated_png_is_corrupt() -> None:
    noisy = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    data = raster_bytes(noisy)
    assert _refusal(data[: len(data) // 2]).code == "corrupt_image"


def test_truncated_jpeg_is_corrupt() -> None:
    noisy = np.random.default_rng(2).integers(0, 256, size=(64, 64), dtype=np.uint8)
    data = raster_bytes(noisy, "JPEG")
    assert _refusal(data[: len(data) // 2]).code == "corrupt_image"


def test_declared_type_contradicting_the_bytes_is_refused() -> None:
    png = raster_bytes(_ramp8())
    error = _refusal(png, "image/jpeg")
    assert error.code == "unsupported_media_type"
    assert "PNG" in error.detail and "JPEG" in error.detail
    assert _refusal(b"just some text, not an image", "image/png").code == "unsupported_media_type"


@pytest.mark.parametrize("media_type", [None, "application/octet-stream", "image/png; charset=binary"])
def test_generic_or_parameterised_media_types_are_sniffed(media_type: str | None) -> None:
    assert decode_bytes(raster_bytes(_ramp8()), media_type).info.format == "png"


def test_unknown_media_type_and_empty_upload_are_refused() -> None:
    assert _refusal(raster_bytes(_ramp8()), "image/gif").code == "unsupported_media_type"
    assert _refusal(b"").code == "unsupported_media_type"
