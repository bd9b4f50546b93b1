"""`input_image=true`: the decoded film, as the model saw it before the letterbox, comes back in
`input.image` (what the built-in viewer draws, since browsers cannot render DICOM)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from app.contract.imaging import PreprocessingSpec, decode_bytes, stretch_washed_out
from app.decode_pool import render_film
from tests.support.images import dicom_bytes, dicom_dataset, png_bytes
from tests.support.service import running_app


def png_pixels(b64: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.mode == "L"
    return np.asarray(image)


async def test_no_image_unless_asked(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", content=png_bytes(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()["input"]["image"] is None


@pytest.mark.parametrize("route", ["/classify", "/ground", "/segment?anatomy=heart"])
async def test_png_comes_back_pixel_for_pixel(client: httpx.AsyncClient, route: str) -> None:
    data = png_bytes(90, 130, seed=3)
    separator = "&" if "?" in route else "?"
    response = await client.post(
        f"{route}{separator}input_image=true", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text
    image = response.json()["input"]["image"]
    assert (image["width"], image["height"]) == (130, 90)
    sent = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(png_pixels(image["png_base64"]), sent)


async def test_monochrome1_dicom_is_shown_inverted_as_the_model_reads_it(
    client: httpx.AsyncClient,
) -> None:
    data = dicom_bytes(dicom_dataset(PhotometricInterpretation="MONOCHROME1"))
    response = await client.post(
        "/classify?input_image=true", content=data, headers={"Content-Type": "application/dicom"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "invert:MONOCHROME1" in body["input"]["steps"]
    shown = png_pixels(body["input"]["image"]["png_base64"]).astype(np.int16)  # (64, 96)
    stored = np.frombuffer(dicom_dataset().PixelData, dtype=np.uint8).reshape(64, 96).astype(np.int16)
    expected = np.rint(decode_bytes(data).pixels * 255.0).astype(np.int16)
    assert np.abs(shown - expected).max() <= 1
    # inverted: the brightest stored value is the darkest shown one
    assert shown[stored == stored.max()].max() < shown[stored == stored.min()].min()


def test_washed_out_film_is_shown_stretched_like_the_model_input() -> None:
    rng = np.random.default_rng(0)
    pixels = (0.40 + 0.05 * rng.random((80, 120))).astype(np.float32)  # a 0.05-wide sliver of gray
    spec = PreprocessingSpec(washed_out_span=0.25)
    film = render_film(pixels, spec)
    assert (film.width, film.height) == (120, 80)
    shown = png_pixels(film.png_base64)
    expected = np.rint(stretch_washed_out(pixels, 0.25) * 255.0)
    assert np.abs(shown - expected).max() <= 1 and shown.max() - shown.min() > 200
    untouched = png_pixels(render_film(pixels, PreprocessingSpec()).png_base64)
    assert untouched.max() - untouched.min() < 20  # washed_out_span 0: shown as decoded


async def test_decode_process_returns_the_same_image(make_app: Callable[..., FastAPI]) -> None:
    """The PNG is encoded in the decode process and crosses back with the model input."""
    data = dicom_bytes(dicom_dataset(PhotometricInterpretation="MONOCHROME1"))
    images = []
    for processes in (0, 1):
        app = make_app(decode_processes=processes, decode_inline=False)
        async with running_app(app) as client:
            response = await client.post(
                "/classify?input_image=true", content=data, headers={"Content-Type": "application/dicom"}
            )
            assert response.status_code == 200, response.text
            images.append(response.json()["input"]["image"])
    assert images[0] == images[1]


async def test_openapi_documents_the_option(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for path in ("/classify", "/ground", "/segment"):
        names = {p["name"] for p in document["paths"][path]["post"]["parameters"]}
        assert "input_image" in names
    image = document["components"]["schemas"]["InputImage"]
    assert set(image["required"]) == {"png_base64", "width", "height"}
