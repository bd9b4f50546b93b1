"""A client that hangs up is a client outcome (499), logged once, and its queued job is never computed."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from starlette.types import Message

from app.contract.bundle import Bundle
from app.settings import Settings
from tests.support.images import png_bytes
from tests.support.service import HookedRunner, running_app


class CountingRunner(HookedRunner):
    """The tiny model; after warm-up, each call blocks until `gate` is set and counts its images."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.images_seen = 0

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        self.started.set()
        self.gate.wait(timeout=10)
        self.images_seen += int(np.abs(images).reshape(images.shape[0], -1).sum(axis=1).astype(bool).sum())


def _scope(path: str, body_length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"image/png"), (b"content-length", str(body_length).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call_raw(
    app: FastAPI, body_length: int, receive: Callable[[], Awaitable[Message]]
) -> list[Message]:
    """Drive the ASGI app directly (a transport cannot hang up mid-request); returns what it sent."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope("/classify", body_length), receive, send)
    return sent


def _sample(app: FastAPI, name: str, **labels: str) -> float:
    value = app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_hangup_mid_upload_is_499_logged_once(
    make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    image = png_bytes()
    app = make_app()
    messages: list[Message] = [
        {"type": "http.request", "body": image[:50], "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    async with running_app(app):
        caplog.clear()
        await call_raw(app, len(image), receive)
    assert _sample(app, "medslip_rejections_total", reason="client_closed_request") == 1
    assert (
        _sample(app, "medslip_http_request_duration_seconds_count", endpoint="/classify", status_class="4xx")
        == 1
    )
    assert (
        _sample(app, "medslip_http_request_duration_seconds_count", endpoint="/classify", status_class="5xx")
        == 0
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    lines = [r for r in caplog.records if r.name == "app.access"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and getattr(lines[0], "status", None) == 499


async def test_hangup_while_queued_drops_the_job_before_inference(make_app: Callable[..., FastAPI]) -> None:
    runners: list[CountingRunner] = []

    def factory(bundle: Bundle, settings: Settings) -> CountingRunner:
        runners.append(CountingRunner(bundle))
        return runners[-1]

    app = make_app(factory, max_batch_size=1, batch_buckets=[1])
    image = png_bytes(seed=3)
    async with running_app(app) as client:
        runner = runners[0]
        runner.images_seen, runner.gate = 0, threading.Event()
        runner.started.clear()
        first = asyncio.create_task(
            client.post("/classify", content=png_bytes(seed=4), headers={"Content-Type": "image/png"})
        )
        await asyncio.to_thread(runner.started.wait, 10)  # the model is busy with the first request
        hang_up = asyncio.Event()
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": image, "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        queued = asyncio.create_task(call_raw(app, len(image), receive))
        for _ in range(2000):  # bounded (10 s): until the second request waits in the queue
            if app.state.service.batcher.depth == 1:
                break
            await asyncio.sleep(0.005)
        assert app.state.service.batcher.depth == 1
        hang_up.set()
        sent = await asyncio.wait_for(queued, 10)
        assert app.state.service.batcher.depth == 0  # left the queue at once
        runner.gate.set()
        assert (await first).status_code == 200
    assert runner.images_seen == 1  # only the first request's image ever reached the model
    assert not any(m["type"] == "http.response.start" for m in sent)
    assert _sample(app, "medslip_rejections_total", reason="client_closed_request") == 1
    assert (
        _sample(app, "medslip_http_request_duration_seconds_count", endpoint="/classify", status_class="5xx")
        == 0
    )
