"""Colour-encoded DICOM (JPEG YBR, palette): accepted only when the content is gray."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from app.contract.imaging import ImagingError, decode_bytes
from tests.support.images import dicom_bytes, gradient, make_dataset


def _jpeg_dicom(rgb: np.ndarray) -> bytes:
    """A real JPEG Baseline YBR_FULL_422 dataset, the way many secondary captures arrive."""
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    dataset = make_dataset(rgb, photometric="YBR_FULL_422", transfer_syntax=JPEGBaseline8Bit)
    dataset.PixelData = encapsulate([buffer.getvalue()])
    return dicom_bytes(dataset)


def _gray_rgb() -> np.ndarray:
    gray = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))  # (64, 64)
    return np.repeat(gray[:, :, None], 3, axis=2)  # (64, 64, 3)


def test_jpeg_ybr_dicom_of_gray_content_is_accepted() -> None:
    rgb = _gray_rgb()
    image = decode_bytes(_jpeg_dicom(rgb))

    assert image.info.photometric == "YBR_FULL_422"
    assert np.abs(image.pixels - rgb[..., 0] / 255.0).max() < 0.02
    assert image.info.steps[:2] == ["colour_space:YBR_FULL_422->RGB", "colour_to_gray:channels agree"]


def test_jpeg_ybr_dicom_in_colour_is_refused() -> None:
    rgb = _gray_rgb()
    rgb[..., 0] = 255  # red cast everywhere
    with pytest.raises(ImagingError) as caught:
        decode_bytes(_jpeg_dicom(rgb))
    assert caught.value.code == "unsupported_photometric"


def _palette_dataset(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> Dataset:
    dataset = make_dataset(gradient(dtype=np.uint8), photometric="PALETTE COLOR")
    for descriptor_tag, data_tag, table in (
        (0x00281101, 0x00281201, red),
        (0x00281102, 0x00281202, green),
        (0x00281103, 0x00281203, blue),
    ):
        dataset.add_new(descriptor_tag, "US", [256, 0, 16])
        dataset.add_new(data_tag, "OW", table.astype("<u2").tobytes())
    return dataset


def test_gray_palette_dicom_is_accepted() -> None:
    ramp = (np.arange(256) * 257).astype(np.uint16)  # 0 .. 65535
    image = decode_bytes(dicom_bytes(_palette_dataset(ramp, ramp, ramp)))

    np.testing.assert_allclose(image.pixels, gradient(dtype=np.uint8) / 255.0, atol=1e-6)
    assert image.info.steps[0] == "palette_lut"


def test_colour_palette_dicom_is_refused() -> None:
    ramp = (np.arange(256) * 257).astype(np.uint16)
    with pytest.raises(ImagingError) as caught:
        decode_bytes(dicom_bytes(_palette_dataset(ramp, ramp[::-1].copy(), ramp)))
    assert caught.value.code == "unsupported_photometric"


@pytest.mark.parametrize("photometric", ["HSV", "ARGB", "CMYK", ""])
def test_unknown_colour_models_are_refused_from_the_header(photometric: str) -> None:
    with pytest.raises(ImagingError) as caught:
        decode_bytes(dicom_bytes(make_dataset(gradient(), photometric=photometric)))
    assert caught.value.code == "unsupported_photometric"
