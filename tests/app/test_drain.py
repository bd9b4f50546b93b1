"""The SIGTERM drain in-process: not ready at once, in-flight work finishes, the queued rest gets 503."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from fastapi import FastAPI

from app.contract.bundle import Bundle
from app.factory import drain_app
from app.settings import Settings
from tests.app.test_client_hangup import CountingRunner
from tests.support.images import png_bytes
from tests.support.service import running_app

PNG = {"Content-Type": "image/png"}


async def test_drain_finishes_in_flight_requests(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(drain_timeout_s=30.0)
    async with running_app(app) as client:
        request = asyncio.create_task(client.post("/classify", content=png_bytes(), headers=PNG))
        for _ in range(2000):  # bounded (10 s): until the request is being handled
            if app.state.in_flight.count:
                break
            await asyncio.sleep(0.005)
        assert await asyncio.wait_for(drain_app(app), 30) is True
        assert (await request).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["code"] == "shutting_down"


async def test_drain_timeout_cuts_queued_requests_with_503(make_app: Callable[..., FastAPI]) -> None:
    runners: list[CountingRunner] = []

    def factory(bundle: Bundle, settings: Settings) -> CountingRunner:
        runners.append(CountingRunner(bundle))
        return runners[-1]

    app = make_app(factory, max_batch_size=1, batch_buckets=[1], drain_timeout_s=0.5, retry_after_s=4)
    async with running_app(app) as client:
        runner = runners[0]
        runner.images_seen, runner.gate = 0, threading.Event()
        runner.started.clear()
        running = asyncio.create_task(client.post("/classify", content=png_bytes(seed=1), headers=PNG))
        await asyncio.to_thread(runner.started.wait, 10)
        queued = [
            asyncio.create_task(client.post("/classify", content=png_bytes(seed=s), headers=PNG))
            for s in (2, 3)
        ]
        for _ in range(2000):  # bounded (10 s): until both wait in the queue
            if app.state.service.batcher.depth == 2:
                break
            await asyncio.sleep(0.005)
        drain = asyncio.create_task(drain_app(app))
        await asyncio.sleep(0)  # the drain has started
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["code"] == "shutting_down"
        assert ready.headers["retry-after"] == "4"
        assert (await client.get("/v2/health/ready")).status_code == 503
        late = await client.post("/classify", content=png_bytes(), headers=PNG)
        assert late.status_code == 503 and late.json()["code"] == "shutting_down"
        cut = await asyncio.gather(*queued)  # answered when the drain times out
        for response in cut:
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "shutting_down" and response.headers["retry-after"] == "4"
        assert await drain is False
        runner.gate.set()
        assert (await running).status_code == 200  # the batch already running finished
    assert runner.images_seen == 1  # the cut requests were never computed
