"""Malformed requests, one table: each gets the right 4xx + problem+json code; the server stays healthy."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from tests.support.images import dicom_bytes, dicom_dataset, jpeg_bytes, png_bytes
from tests.support.service import running_app

UPLOAD_LIMIT = 300_000
PIXEL_LIMIT = 4_000_000
DICOM = "application/dicom"


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    code: str
    body: Any = b""
    content_type: str | None = DICOM
    path: str = "/classify"
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    multipart: dict[str, Any] | None = None
    method: str = "POST"


def _dicom(**changes: Any) -> bytes:
    ds = dicom_dataset()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return dicom_bytes(ds)


def _multi_frame() -> bytes:
    ds = dicom_dataset()
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    return dicom_bytes(ds)


def _structured_report() -> bytes:
    ds = dicom_dataset()
    for keyword in (
        "PixelData",
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    ):
        delattr(ds, keyword)  # an SR has no Image Pixel module at all
    ds.Modality = "SR"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(
        "1.2.840.10008.5.1.4.1.1.88.11"
    )  # Basic Text SR
    return dicom_bytes(ds)


def _colour_dicom() -> bytes:
    ds = dicom_dataset(rows=8, columns=8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    ds.PixelData = rgb.tobytes()
    return dicom_bytes(ds)


def _mpeg_dicom() -> bytes:
    ds = dicom_dataset()
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2
    ds.PixelData = encapsulate([ds.PixelData])
    return dicom_bytes(ds)


def _png_bomb() -> bytes:
    """A 1x1 PNG whose IHDR (CRC fixed) claims 100000 x 100000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _rgb_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8), "RGB").save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def _large_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (2100, 2100)).save(buffer, format="JPEG", quality=20)
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 65536 + 1):
        yield b"\0" * 65536


VALID = dicom_bytes()
CASES = [
    Case("empty raw body", 400, "missing_file", b""),
    Case("no content type", 415, "unsupported_media_type", VALID, content_type=None),
    Case("json body", 415, "unsupported_media_type", b"{}", content_type="application/json"),
    Case("text body", 415, "unsupported_media_type", b"hello", content_type="text/plain"),
    Case(
        "multipart without file",
        400,
        "missing_file",
        multipart={"files": {"other": ("a.txt", b"x", "text/plain")}},
    ),
    Case(
        "multipart without boundary",
        400,
        "malformed_multipart",
        b"--x\r\n",
        content_type="multipart/form-data",
    ),
    Case("multipart empty file", 400, "missing_file", multipart={"files": {"file": ("a.dcm", b"", DICOM)}}),
    Case("garbage as dicom", 422, "invalid_dicom", b"\x00\x01garbage" * 20),
    Case("dicom header truncated", 422, "invalid_dicom", VALID[:200]),
    Case("dicom pixels truncated", 422, "corrupt_image", VALID[: len(VALID) - 2000]),
    Case("pixel data too short", 422, "corrupt_image", _dicom(PixelData=b"\0" * 100)),
    Case("rows zero", 422, "invalid_dicom", _dicom(Rows=0)),
    Case("multi-frame", 422, "multi_frame", _multi_frame()),
    Case("structured report", 422, "not_an_image", _structured_report()),
    Case("colour dicom", 422, "unsupported_photometric", _colour_dicom()),
    Case("mpeg2 transfer syntax", 422, "unsupported_transfer_syntax", _mpeg_dicom()),
    Case("header claims 60000^2 pixels", 413, "image_too_large", _dicom(Rows=60000, Columns=60000)),
    Case("lateral view", 422, "unsupported_view", _dicom(ViewPosition="LL")),
    Case("not a chest", 422, "not_chest", _dicom(BodyPartExamined="HIP")),
    Case("png decompression bomb", 413, "image_too_large", _png_bomb(), content_type="image/png"),
    Case("jpeg over pixel limit", 413, "image_too_large", _large_jpeg(), content_type="image/jpeg"),
    Case("truncated png", 422, "corrupt_image", png_bytes()[:100], content_type="image/png"),
    Case("truncated jpeg", 422, "corrupt_image", jpeg_bytes()[:300], content_type="image/jpeg"),
    Case("gif declared png", 415, "unsupported_media_type", _gif(), content_type="image/png"),
    Case("jpeg declared png", 415, "unsupported_media_type", jpeg_bytes(), content_type="image/png"),
    Case("png declared dicom", 415, "unsupported_media_type", png_bytes()),
    Case("colour png", 422, "unsupported_photometric", _rgb_png(), content_type="image/png"),
    Case("body over limit (content-length)", 413, "payload_too_large", b"\0" * (UPLOAD_LIMIT + 1)),
    Case("body over limit (chunked)", 413, "payload_too_large", "chunked"),
    Case(
        "multipart file over limit",
        413,
        "payload_too_large",
        multipart={"files": {"file": ("a.dcm", b"\0" * (UPLOAD_LIMIT + 10), DICOM)}},
    ),
    Case("empty finding name", 400, "invalid_parameter", VALID, params={"findings": " "}),
    Case("free text too long", 400, "invalid_parameter", VALID, params={"findings": "opacity " * 40}),
    Case(
        "too many free-text findings",
        400,
        "invalid_parameter",
        VALID,
        params={"findings": [f"opacity number {i}" for i in range(17)]},
    ),
    Case("negative deadline", 422, "invalid_request", VALID, headers={"X-Deadline-Ms": "-5"}),
    Case("zero deadline", 422, "invalid_request", VALID, headers={"X-Deadline-Ms": "0"}),
    Case("deadline over ten minutes", 422, "invalid_request", VALID, headers={"X-Deadline-Ms": "600001"}),
    Case("non-numeric deadline", 422, "invalid_request", VALID, headers={"X-Deadline-Ms": "soon"}),
    Case("non-boolean allow_lateral", 422, "invalid_request", VALID, params={"allow_lateral": "maybe"}),
    Case("segment asks nothing", 400, "invalid_parameter", VALID, path="/segment"),
    Case(
        "segment unknown structure", 422, "unknown_name", VALID, path="/segment", params={"anatomy": "spleen"}
    ),
    Case("GET on an inference route", 405, "method_not_allowed", method="GET"),
    Case("unknown path", 404, "not_found", path="/predict"),
]


@pytest.fixture
async def table_client(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(max_upload_bytes=UPLOAD_LIMIT, max_pixels=PIXEL_LIMIT)
    async with running_app(app) as client:
        yield client


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_malformed_input(table_client: httpx.AsyncClient, case: Case) -> None:
    headers = dict(case.headers)
    kwargs: dict[str, Any] = {"params": case.params, "headers": headers}
    if case.multipart is not None:
        kwargs.update(case.multipart)
    elif case.body == "chunked":
        kwargs["content"] = _chunks(UPLOAD_LIMIT * 2)
        headers["Content-Type"] = DICOM
    else:
        kwargs["content"] = case.body
        if case.content_type:
            headers["Content-Type"] = case.content_type
    response = await table_client.request(case.method, case.path, **kwargs)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == case.code and problem["status"] == case.status
    assert problem["type"].endswith(case.code) and problem["title"] and problem["detail"]
    metrics = (await table_client.get("/metrics")).text
    assert f'medslip_rejections_total{{reason="{case.code}"}} 1.0' in metrics
    # The server keeps serving: ready, and a valid image still gets an answer.
    assert (await table_client.get("/health/ready")).status_code == 200
    ok = await table_client.post("/classify", content=VALID, headers={"Content-Type": DICOM})
    assert ok.status_code == 200
