"""Running the service in-process for tests: the app's lifespan with an httpx client, and a runner
test double with hooks around each model call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

from app.contract.bundle import Bundle
from app.contract.vocabulary import OUTPUT_NAMES
from app.runtime import ModelOutputs, OrtImageModel


class HookedRunner(OrtImageModel):
    """The real tiny model (CPU, one intra-op thread) with hooks around each call, warm-up included:
    a test double overrides `before_run` to wait on an event, sleep, count, record or fail (raise), and
    `after_run` to note when the real run has finished."""

    def __init__(
        self, bundle: Bundle, *, device: str = "cpu", intra_op_threads: int = 1, **options: Any
    ) -> None:
        super().__init__(bundle, device=device, intra_op_threads=intra_op_threads, **options)

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        """Called with the batch and the outputs asked for before the real run; raising fails the call."""

    def after_run(self) -> None:
        """Called once the real run has returned."""

    def run(
        self,
        images: np.ndarray,
        pathology_queries: np.ndarray,
        anatomy_queries: np.ndarray,
        outputs: Iterable[str] = OUTPUT_NAMES,
    ) -> ModelOutputs:
        wanted = frozenset(outputs)
        self.before_run(images, wanted)
        result = super().run(images, pathology_queries, anatomy_queries, wanted)
        self.after_run()
        return result


async def wait_ready(client: httpx.AsyncClient, attempts: int = 1500) -> None:
    """Poll /health/ready (bounded: 30 s, room for decode processes to start on a loaded host) until the
    model is warmed up."""
    for _ in range(attempts):
        if (await client.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("service never became ready")


@asynccontextmanager
async def running_app(app: FastAPI, *, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            if ready:
                await wait_ready(client)
            yield client
