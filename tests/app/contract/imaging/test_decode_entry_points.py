"""decode_path, the public API surface, and the pydicom privacy switch."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom.config
import pytest

from app.contract import imaging
from app.contract.imaging import (
    ERROR_CODES,
    ImagingError,
    decode_path,
    quiet_pydicom_value_messages,
    read_dicom,
)
from tests.support.images import dicom_bytes, gradient, make_dataset, raster_bytes

CONTRACT_NAMES = ("decode_bytes", "decode_path", "DecodedImage", "ImagingError", "preprocess", "Letterbox")
CONTRACT_CODES = {
    "invalid_dicom",
    "unsupported_transfer_syntax",
    "image_too_large",
    "image_too_small",
    "unsupported_view",
    "multi_frame",
    "not_an_image",
    "unsupported_photometric",
    "corrupt_image",
    "unsupported_media_type",
    "not_chest",
}

# Some fixtures are deliberately non-conformant (lower-case code strings, bad UIDs, cut files).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR:UserWarning", "ignore:End of file reached before delimiter:UserWarning"
)


def test_public_api_matches_the_contract() -> None:
    for name in CONTRACT_NAMES:
        assert name in imaging.__all__ and hasattr(imaging, name)
    assert set(ERROR_CODES) == CONTRACT_CODES


def test_decode_path_trusts_content_not_the_suffix(tmp_path: Path) -> None:
    misnamed = tmp_path / "scan.dcm"
    misnamed.write_bytes(raster_bytes(np.full((4, 6), 128, dtype=np.uint8)))
    image = decode_path(misnamed)
    assert image.info.format == "png" and image.shape == (4, 6)


def test_decode_path_passes_options_through(tmp_path: Path) -> None:
    path = tmp_path / "lateral.dcm"
    path.write_bytes(dicom_bytes(make_dataset(gradient(), ViewPosition="LL")))
    with pytest.raises(ImagingError):
        decode_path(path)
    assert decode_path(path, allow_lateral=True).info.view_position == "LL"


@pytest.fixture
def restore_pydicom_validation() -> Iterator[None]:
    previous = pydicom.config.settings.reading_validation_mode
    yield
    pydicom.config.settings.reading_validation_mode = previous


def _warnings_when_reading_uid(data: bytes) -> list[str]:
    """Messages pydicom emits when a consumer (e.g. the bridge) reads the Study Instance UID."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _ = read_dicom(data).StudyInstanceUID
    return [str(w.message) for w in caught]


@pytest.mark.usefixtures("restore_pydicom_validation")
def test_quiet_pydicom_value_messages_stops_values_being_quoted() -> None:
    bad_uid = "1.2.840.DOE.JANE"  # invalid UI characters: pydicom quotes it when validating
    data = dicom_bytes(make_dataset(gradient(), StudyInstanceUID=bad_uid))

    pydicom.config.settings.reading_validation_mode = pydicom.config.WARN
    assert any(bad_uid in message for message in _warnings_when_reading_uid(data)), "precondition"

    quiet_pydicom_value_messages()
    assert not any(bad_uid in message for message in _warnings_when_reading_uid(data))


def test_importing_the_module_pulls_in_no_heavy_framework() -> None:
    """The torch-free service and the bridge import this module: it must not drag torch or ORT in."""
    heavy = "('torch', 'onnxruntime', 'onnx')"
    probe = f"import sys, app.contract.imaging; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
