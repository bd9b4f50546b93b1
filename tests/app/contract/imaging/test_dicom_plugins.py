"""Decoder plugin choice: the fast plugin first, pydicom's full order as the fallback."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGBaseline8Bit

from app.contract.imaging import ImagingError, decode_bytes
from tests.support.images import dicom_bytes, make_dataset


def _jpeg_mono_dicom() -> tuple[bytes, np.ndarray]:
    gray = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))  # (64, 64)
    buffer = BytesIO()
    Image.fromarray(gray).save(buffer, format="JPEG", quality=95)
    dataset = make_dataset(gray, transfer_syntax=JPEGBaseline8Bit)
    dataset.PixelData = encapsulate([buffer.getvalue()])
    return dicom_bytes(dataset), gray


class _RecordingDecoder:
    """Wraps a pydicom decoder: records the plugins asked for and makes some of them fail."""

    def __init__(self, uid: str, failing_plugins: set[str]) -> None:
        self._decoder = get_decoder(uid)
        self.available_plugins = self._decoder.available_plugins
        self.failing_plugins = failing_plugins
        self.requested: list[str] = []

    def as_array(self, dataset: Any, **options: Any) -> Any:
        plugin = options.get("decoding_plugin", "")
        self.requested.append(plugin)
        if plugin in self.failing_plugins:
            raise RuntimeError("simulated codec failure")
        return self._decoder.as_array(dataset, **options)


@pytest.mark.parametrize(
    ("failing", "expected_requests"), [(set(), ["pillow"]), ({"pillow"}, ["pillow", ""])]
)
def test_fast_plugin_first_then_fallback(
    monkeypatch: pytest.MonkeyPatch, failing: set[str], expected_requests: list[str]
) -> None:
    data, gray = _jpeg_mono_dicom()
    recorder = _RecordingDecoder(JPEGBaseline8Bit, failing)
    monkeypatch.setattr("app.contract.imaging.dicom_pixels.get_decoder", lambda _uid: recorder)

    image = decode_bytes(data)

    assert recorder.requested == expected_requests
    assert np.abs(image.pixels - gray / 255.0).max() < 0.02


def test_every_plugin_failing_is_corrupt_image(monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = _jpeg_mono_dicom()
    recorder = _RecordingDecoder(JPEGBaseline8Bit, {"pillow", ""})
    monkeypatch.setattr("app.contract.imaging.dicom_pixels.get_decoder", lambda _uid: recorder)

    with pytest.raises(ImagingError) as caught:
        decode_bytes(data)
    assert caught.value.code == "corrupt_image"
    assert recorder.requested == ["pillow", ""]
