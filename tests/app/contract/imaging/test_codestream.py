"""Codestream size sniffing, and refusing a compressed frame larger than its DICOM header says."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, JPEGBaseline8Bit, RLELossless

from app.contract.imaging import ImagingError, decode_bytes
from app.contract.imaging.codestream import codestream_size
from tests.support.images import dicom_bytes, gradient, make_dataset


def _encode(rows: int, columns: int, fmt: str, **options: Any) -> bytes:
    buffer = BytesIO()
    Image.fromarray(np.zeros((rows, columns), dtype=np.uint8)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("stream", "transfer_syntax"),
    [
        (_encode(37, 53, "JPEG"), JPEGBaseline8Bit),
        (_encode(37, 53, "JPEG", progressive=True), JPEGBaseline8Bit),
        (_encode(37, 53, "JPEG2000", no_jp2=True), JPEG2000),
        (_encode(37, 53, "JPEG2000"), JPEG2000),  # JP2 boxes around the codestream
    ],
    ids=["jpeg", "jpeg-progressive", "j2k-codestream", "jp2-file"],
)
def test_codestream_size_reads_rows_and_columns(stream: bytes, transfer_syntax: str) -> None:
    assert codestream_size(stream, transfer_syntax) == (37, 53)


def test_codestream_size_is_unknown_for_rle_and_garbage() -> None:
    assert codestream_size(b"\x01\x00\x00\x00" + b"\x00" * 60, RLELossless) is None
    assert codestream_size(b"\xff\xd8\xff\xda", JPEGBaseline8Bit) is None  # scan before any frame header
    assert codestream_size(b"not a codestream", JPEG2000) is None


@pytest.mark.parametrize(
    ("fmt", "transfer_syntax", "options"),
    [("JPEG", JPEGBaseline8Bit, {}), ("JPEG2000", JPEG2000, {"no_jp2": True})],
    ids=["jpeg", "j2k"],
)
def test_codestream_larger_than_the_header_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, fmt: str, transfer_syntax: str, options: dict[str, Any]
) -> None:
    def must_not_decode(_uid: str) -> None:
        raise AssertionError("a decoder was asked to decode a mismatched codestream")

    dataset = make_dataset(gradient(dtype=np.uint8), transfer_syntax=transfer_syntax)  # header: 64 x 64
    dataset.PixelData = encapsulate([_encode(640, 480, fmt, **options)])
    monkeypatch.setattr("app.contract.imaging.dicom_pixels.get_decoder", must_not_decode)

    with pytest.raises(ImagingError) as caught:
        decode_bytes(dicom_bytes(dataset))
    assert caught.value.code == "corrupt_image"
    assert "640 x 480" in caught.value.detail


def test_matching_j2k_codestream_decodes() -> None:
    gray = gradient(dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(gray).save(buffer, format="JPEG2000", no_jp2=True, irreversible=False)
    dataset = make_dataset(gray, transfer_syntax="1.2.840.10008.1.2.4.90")  # JPEG 2000 lossless
    dataset.PixelData = encapsulate([buffer.getvalue()])

    image = decode_bytes(dicom_bytes(dataset))
    np.testing.assert_allclose(image.pixels, gray / 255.0, atol=1e-6)
