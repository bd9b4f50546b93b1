"""The real DICOM files of ../shared/data/dicom via the service: served or refused for the right reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from app.contract.imaging import decode_path
from tests.support.service import running_app

EXPECTED = {
    "highdicom_dx_image.dcm": (200, None),
    "nih_gcp_DX_nofinding.dcm": (200, None),
    "siim_chest_jpeg_baseline.dcm": (200, None),
    "txv_Fake_MONOHR1.dcm": (200, None),
    "wg04_RG1_J2KI.dcm": (200, None),
    "wg04_RG2_J2KR.dcm": (422, "not_chest"),
    "wg04_RG2_JLSL.dcm": (422, "not_chest"),
    "wg04_RG2_JPLL.dcm": (422, "not_chest"),
    "wg04_RG2_RLE.dcm": (422, "not_chest"),
}

pytestmark = pytest.mark.shared_data


async def test_every_real_dicom_is_served_or_refused(
    shared_data: Path, make_app: Callable[..., FastAPI]
) -> None:
    folder = shared_data / "dicom"
    assert sorted(p.name for p in folder.glob("*.dcm")) == sorted(EXPECTED)
    app = make_app()
    async with running_app(app) as client:
        for name, (status, code) in EXPECTED.items():
            response = await client.post(
                "/ground",
                params={"findings": "effusion"},
                content=(folder / name).read_bytes(),
                headers={"Content-Type": "application/dicom"},
            )
            assert response.status_code == status, (name, response.text)
            body = response.json()
            if code is not None:
                assert body["code"] == code
                continue
            heatmap = body["findings"][0]["heatmap"]
            assert (heatmap["height"], heatmap["width"]) == (
                body["input"]["rows"],
                body["input"]["columns"],
            ), name
        assert (await client.get("/health/ready")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert 'transfer_syntax="jpeg_baseline"' in metrics and 'transfer_syntax="jpeg2000"' in metrics
    assert 'photometric="MONOCHROME1"' in metrics


async def test_monochrome1_twin_is_served_as_the_inverse(
    shared_data: Path, make_app: Callable[..., FastAPI]
) -> None:
    folder = shared_data / "dicom"
    plain = decode_path(folder / "siim_chest_jpeg_baseline.dcm").pixels
    twin = decode_path(folder / "txv_Fake_MONOHR1.dcm").pixels
    assert np.abs((1.0 - twin) - plain).mean() < 0.01
    async with running_app(make_app()) as client:
        scores = []
        for name in ("siim_chest_jpeg_baseline.dcm", "txv_Fake_MONOHR1.dcm"):
            response = await client.post(
                "/classify",
                content=(folder / name).read_bytes(),
                headers={"Content-Type": "application/dicom"},
            )
            scores.append([f["score"] for f in response.json()["findings"]])
    assert scores[0] != scores[1]  # identical stored pixels, opposite rendering -> different model input
