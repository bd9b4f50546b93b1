"""Memory budgets (buffered bodies, decoding) refuse cheaply with 503; slow bodies time out with 408."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from app.budgets import DECODE_BYTES_PER_PIXEL, ByteBudget, estimated_decode_bytes
from tests.support.images import dicom_bytes, dicom_dataset, jpeg_bytes, png_bytes
from tests.support.service import running_app

DICOM = {"Content-Type": "application/dicom"}


def test_byte_budget_admits_what_fits_and_one_oversized_request_alone() -> None:
    budget = ByteBudget(100)
    assert budget.try_acquire(60) and budget.in_use == 60
    assert not budget.try_acquire(50) and budget.in_use == 60  # a refusal reserves nothing
    assert budget.try_acquire(40) and budget.in_use == 100
    budget.release(100)
    assert budget.try_acquire(500) and budget.in_use == 500  # alone, even beyond the budget
    assert not budget.try_acquire(1)
    budget.release(500)
    assert budget.in_use == 0


def test_decode_cost_comes_from_the_header() -> None:
    assert estimated_decode_bytes(png_bytes(80, 120, bits=16)) == 80 * 120 * DECODE_BYTES_PER_PIXEL
    assert estimated_decode_bytes(jpeg_bytes(80, 120)) == 80 * 120 * DECODE_BYTES_PER_PIXEL
    dicom = dicom_bytes(dicom_dataset(rows=64, columns=96))
    assert estimated_decode_bytes(dicom) == 64 * 96 * DECODE_BYTES_PER_PIXEL
    assert estimated_decode_bytes(dicom[128 + 4 :]) == 64 * 96 * DECODE_BYTES_PER_PIXEL  # no preamble
    assert estimated_decode_bytes(b"\x89PNG\r\n\x1a\n garbage") == 0  # the decoder refuses it later


class StalledBody:
    """A request body that sends `first` bytes, then waits for `release` before the rest."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.sent_first = asyncio.Event()
        self.release = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        self.sent_first.set()
        await self.release.wait()
        yield self.rest


async def test_buffered_bytes_beyond_the_budget_get_503(make_app: Callable[..., FastAPI]) -> None:
    body = dicom_bytes()
    app = make_app(max_buffered_bytes=len(body) + 1024, retry_after_s=2)
    async with running_app(app) as client:
        for declared in (True, False):  # Content-Length reserved up front, or counted as chunks arrive
            stalled = StalledBody(body[:-100], body[-100:])  # holds nearly a whole body's worth
            headers = {**DICOM, "Content-Length": str(len(body))} if declared else DICOM
            holder = asyncio.create_task(client.post("/classify", content=stalled, headers=headers))
            await asyncio.wait_for(stalled.sent_first.wait(), 10)
            second = body if declared else _chunked(body)
            refused = await client.post("/classify", content=second, headers=DICOM)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "upload_budget_exceeded"
            assert refused.headers["retry-after"] == "2"
            stalled.release.set()
            assert (await holder).status_code == 200
            assert (await client.post("/classify", content=body, headers=DICOM)).status_code == 200
    registry = app.state.metrics.registry
    assert registry.get_sample_value("medslip_rejections_total", {"reason": "upload_budget_exceeded"}) == 2
    assert registry.get_sample_value("medslip_budget_bytes_in_use", {"budget": "upload"}) == 0


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


async def test_decoding_beyond_the_budget_gets_503(make_app: Callable[..., FastAPI]) -> None:
    image = png_bytes(80, 120)
    cost = estimated_decode_bytes(image)
    app = make_app(max_decode_bytes=cost * 2)
    async with running_app(app) as client:
        budget: ByteBudget = app.state.service.decode_budget
        assert budget.try_acquire(cost + 1)  # as if a large image were being decoded now
        refused = await client.post("/classify", content=image, headers={"Content-Type": "image/png"})
        assert refused.status_code == 503 and refused.json()["code"] == "decode_budget_exceeded"
        assert "retry-after" in refused.headers
        budget.release(cost + 1)
        ok = await client.post("/classify", content=image, headers={"Content-Type": "image/png"})
        assert ok.status_code == 200
        assert budget.in_use == 0  # released after preprocessing, not held while queued


async def test_image_larger_than_the_whole_budget_is_decoded_alone(make_app: Callable[..., FastAPI]) -> None:
    async with running_app(make_app(max_decode_bytes=1024)) as client:
        ok = await client.post("/classify", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert ok.status_code == 200


async def test_slow_body_gets_408(make_app: Callable[..., FastAPI]) -> None:
    body = dicom_bytes()
    app = make_app(body_timeout_s=0.3)
    async with running_app(app) as client:
        stalled = StalledBody(body[:1000], body[1000:])  # never released: the server must give up
        response = await client.post(
            "/classify", content=stalled, headers={**DICOM, "Content-Length": str(len(body))}
        )
        assert response.status_code == 408
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "request_timeout"
        stalled.release.set()
        assert (
            app.state.metrics.registry.get_sample_value("medslip_budget_bytes_in_use", {"budget": "upload"})
            == 0
        )
