"""The nine real DICOM files in ../shared/data/dicom: every transfer syntax, photometric and refusal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import ImagingError, decode_bytes, decode_path

pytestmark = pytest.mark.shared_data


@dataclass(frozen=True)
class RealFile:
    name: str
    shape: tuple[int, int]
    photometric: str
    transfer_syntax: str
    bits_stored: int
    chest: bool


REAL_FILES = (
    RealFile("highdicom_dx_image", (169, 211), "MONOCHROME1", "1.2.840.10008.1.2.1", 8, True),
    RealFile("nih_gcp_DX_nofinding", (1024, 1024), "MONOCHROME2", "1.2.840.10008.1.2", 8, True),
    RealFile("siim_chest_jpeg_baseline", (1024, 1024), "MONOCHROME2", "1.2.840.10008.1.2.4.50", 8, True),
    RealFile("txv_Fake_MONOHR1", (1024, 1024), "MONOCHROME1", "1.2.840.10008.1.2.4.50", 8, True),
    RealFile("wg04_RG1_J2KI", (1955, 1841), "MONOCHROME1", "1.2.840.10008.1.2.4.91", 15, True),
    RealFile("wg04_RG2_J2KR", (2140, 1760), "MONOCHROME2", "1.2.840.10008.1.2.4.90", 10, False),
    RealFile("wg04_RG2_JLSL", (2140, 1760), "MONOCHROME2", "1.2.840.10008.1.2.4.80", 10, False),
    RealFile("wg04_RG2_JPLL", (2140, 1760), "MONOCHROME2", "1.2.840.10008.1.2.4.70", 10, False),
    RealFile("wg04_RG2_RLE", (2140, 1760), "MONOCHROME2", "1.2.840.10008.1.2.5", 10, False),
)
CHEST_FILES = [f for f in REAL_FILES if f.chest]
HIP_FILES = [f for f in REAL_FILES if not f.chest]


def _path(shared_data: Path, name: str) -> Path:
    return shared_data / "dicom" / f"{name}.dcm"


def test_the_table_lists_every_real_file(shared_data: Path) -> None:
    on_disk = sorted(p.stem for p in (shared_data / "dicom").glob("*.dcm"))
    assert on_disk == sorted(f.name for f in REAL_FILES)


@pytest.mark.parametrize("real", CHEST_FILES, ids=lambda f: f.name)
def test_chest_file_decodes_with_expected_header_facts(shared_data: Path, real: RealFile) -> None:
    image = decode_path(_path(shared_data, real.name))

    assert image.pixels.shape == real.shape
    assert image.pixels.dtype == np.float32
    assert float(image.pixels.min()) >= 0.0 and float(image.pixels.max()) <= 1.0
    assert float(image.pixels.std()) > 0.05, "a radiograph is not a flat image"
    assert image.info.format == "dicom"
    assert image.info.photometric == real.photometric
    assert image.info.transfer_syntax == real.transfer_syntax
    assert image.info.bits_stored == real.bits_stored
    assert ("invert:MONOCHROME1" in image.info.steps) == (real.photometric == "MONOCHROME1")
    assert image.info.steps[-1] == "scale:float32[0,1]"


@pytest.mark.parametrize("real", HIP_FILES, ids=lambda f: f.name)
def test_hip_file_is_refused_as_not_chest(shared_data: Path, real: RealFile) -> None:
    with pytest.raises(ImagingError) as caught:
        decode_path(_path(shared_data, real.name))
    assert caught.value.code == "not_chest"
    assert "HIP" in caught.value.detail


@pytest.mark.parametrize("real", HIP_FILES, ids=lambda f: f.name)
def test_hip_file_decodes_when_body_part_check_is_off(shared_data: Path, real: RealFile) -> None:
    image = decode_path(_path(shared_data, real.name), check_body_part=False)

    assert image.pixels.shape == real.shape
    assert image.info.transfer_syntax == real.transfer_syntax
    assert image.info.photometric == real.photometric
    assert "bits_stored_mask:10/16" in image.info.steps
    assert any(step.startswith("window:center=511,width=1024") for step in image.info.steps)


def test_lossless_transfer_syntaxes_give_identical_pixels(shared_data: Path) -> None:
    """Four codecs (JPEG 2000, JPEG-LS, JPEG lossless P14, RLE) of one film must agree exactly."""
    decoded = [decode_path(_path(shared_data, f.name), check_body_part=False).pixels for f in HIP_FILES]
    for other in decoded[1:]:
        np.testing.assert_array_equal(decoded[0], other)


def test_fake_monochrome1_renders_as_the_inverse_of_its_monochrome2_twin(shared_data: Path) -> None:
    normal = decode_path(_path(shared_data, "siim_chest_jpeg_baseline")).pixels
    flagged = decode_path(_path(shared_data, "txv_Fake_MONOHR1")).pixels

    correlation = float(np.corrcoef(normal.ravel(), flagged.ravel())[0, 1])
    assert correlation < -0.999
    np.testing.assert_allclose(flagged, 1.0 - normal, atol=1e-6)


def test_monochrome1_lungs_render_dark(shared_data: Path) -> None:
    """After inversion the air-filled lungs (left and right thirds, mid height) are darker than the spine."""
    pixels = decode_path(_path(shared_data, "wg04_RG1_J2KI")).pixels
    rows, columns = pixels.shape
    band = pixels[rows // 3 : rows // 2]
    lungs = (
        band[:, columns // 5 : columns // 3].mean() + band[:, 2 * columns // 3 : 4 * columns // 5].mean()
    ) / 2
    spine = band[:, columns // 2 - columns // 20 : columns // 2 + columns // 20].mean()
    assert lungs < spine


def test_media_type_hint_must_match_real_dicom(shared_data: Path) -> None:
    data = _path(shared_data, "siim_chest_jpeg_baseline").read_bytes()
    assert decode_bytes(data, "application/dicom").info.format == "dicom"
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data, "image/png")
    assert caught.value.code == "unsupported_media_type"


def test_real_file_refused_from_header_when_over_pixel_limit(shared_data: Path) -> None:
    with pytest.raises(ImagingError) as caught:
        decode_path(_path(shared_data, "wg04_RG1_J2KI"), max_pixels=1_000_000)
    assert caught.value.code == "image_too_large"
