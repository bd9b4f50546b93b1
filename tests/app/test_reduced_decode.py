"""The service decodes a large JPEG at a reduced resolution and still answers in the original film's
pixel coordinates: the same masks and heat maps, placed the same way, as with full-size decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI

from tests.app.test_endpoints import decode_png
from tests.support.images import phantom, raster_bytes
from tests.support.service import running_app

ROWS, COLUMNS = 700, 1000  # the tiny bundle's 64 px input: decode_long_side 128, so JPEG 1/4 (250 px)


async def _post(make_app: Callable[..., FastAPI], route: str, params: dict[str, Any], reduced: bool) -> Any:
    image = raster_bytes(phantom(ROWS, COLUMNS, maximum=255), "JPEG", quality=90)
    async with running_app(make_app(reduced_decode=reduced)) as client:
        headers = {"Content-Type": "image/jpeg"}
        response = await client.post(route, params=params, content=image, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _reduced_steps(body: dict[str, Any]) -> list[str]:
    return [step for step in body["input"]["steps"] if step.startswith("reduced_decode")]


async def test_masks_are_the_same_with_and_without_reduced_decoding(make_app: Callable[..., FastAPI]) -> None:
    params = {"anatomy": ["left_lung", "right_lung", "heart"], "findings": "effusion"}
    on = await _post(make_app, "/segment", params, reduced=True)
    off = await _post(make_app, "/segment", params, reduced=False)

    assert _reduced_steps(on) == ["reduced_decode:1/4 (JPEG DCT scaling)"] and _reduced_steps(off) == []
    for body in (on, off):
        assert (body["input"]["rows"], body["input"]["columns"]) == (ROWS, COLUMNS)
    for mask_on, mask_off in zip(on["masks"], off["masks"], strict=True):
        assert mask_on["name"] == mask_off["name"]
        assert (mask_on["width"], mask_on["height"]) == (COLUMNS, ROWS)
        assert (mask_off["width"], mask_off["height"]) == (COLUMNS, ROWS)
        agree = (decode_png(mask_on["png_base64"]) > 0) == (decode_png(mask_off["png_base64"]) > 0)
        assert float(agree.mean()) >= 0.99


async def test_heat_maps_are_the_same_with_and_without_reduced_decoding(
    make_app: Callable[..., FastAPI],
) -> None:
    on = await _post(make_app, "/ground", {"findings": "effusion"}, reduced=True)
    off = await _post(make_app, "/ground", {"findings": "effusion"}, reduced=False)

    assert _reduced_steps(on) and not _reduced_steps(off)
    (finding_on,), (finding_off,) = on["findings"], off["findings"]
    heat_on = decode_png(finding_on["heatmap"]["png_base64"]).astype(np.float64)
    heat_off = decode_png(finding_off["heatmap"]["png_base64"]).astype(np.float64)
    assert heat_on.shape == heat_off.shape == (ROWS, COLUMNS)
    assert np.corrcoef(heat_on.ravel(), heat_off.ravel())[0, 1] >= 0.99
    assert abs(finding_on["score"] - finding_off["score"]) <= 0.01
