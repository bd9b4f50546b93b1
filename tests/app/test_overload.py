"""Sustained overload: what is accepted finishes within the latency budget; recovery is immediate.

The model is the tiny bundle slowed to a fixed 100 ms per batch of at most 2 (about 20 requests/s),
warm-up included, so the service measures the same batch time it will see. 64 clients keep a
request outstanding each (about 30 times what the model can serve in the budget); a refused client
retries as soon as another request completes, so the load never lets up and never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx
import numpy as np
from fastapi import FastAPI

from app.contract.bundle import Bundle
from app.settings import Settings
from tests.support.images import png_bytes
from tests.support.service import HookedRunner, running_app

BATCH_S = 0.1
BUDGET_MS = 500.0
CLIENTS = 64
ACCEPTED_TARGET = 60
HEADERS = {"Content-Type": "image/png"}


class SlowRunner(HookedRunner):
    """The tiny model taking a fixed BATCH_S per call, as a real model's compute would."""

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        time.sleep(BATCH_S)  # stands in for the model's compute time


def slow(bundle: Bundle, settings: Settings) -> SlowRunner:
    return SlowRunner(bundle)


async def test_overload_keeps_accepted_latency_within_budget(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(
        slow,
        max_batch_size=2,
        batch_buckets=[1, 2],
        max_delay_ms=0.0,
        latency_budget_ms=BUDGET_MS,
        max_queue_size=CLIENTS,
        retry_after_s=1,
    )
    image = png_bytes()
    accepted_s: list[float] = []
    refused: list[httpx.Response] = []
    progress = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while len(accepted_s) < ACCEPTED_TARGET and len(refused) < 20_000:
            start = time.perf_counter()
            response = await client.post("/classify", content=image, headers=HEADERS)
            if response.status_code == 200:
                accepted_s.append(time.perf_counter() - start)
                progress.set()
                progress.clear()
                continue
            refused.append(response)
            with contextlib.suppress(TimeoutError):  # retry after a completion (bounded wait)
                await asyncio.wait_for(progress.wait(), 5.0)

    async with running_app(app) as client:
        overload_start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client_loop(client) for _ in range(CLIENTS))), 60.0)
        overload_s = time.perf_counter() - overload_start
        recovery_start = time.perf_counter()
        after = await client.post("/classify", content=image, headers=HEADERS)
        recovery_s = time.perf_counter() - recovery_start

    assert refused, "the load never exceeded the budget"
    assert {r.status_code for r in refused} == {503}
    assert {r.json()["code"] for r in refused} == {"latency_budget_exceeded"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    ordered = sorted(accepted_s)
    p50, worst = ordered[len(ordered) // 2], ordered[-1]
    budget_s = BUDGET_MS / 1000.0
    # Accepted requests finish within the budget, plus slack for estimation error and a busy CI
    # host (measured: p50 0.53 s, worst 0.74 s); without admission control the same load gave
    # p50 3.28 s, worst 3.48 s (CLIENTS / 2 * BATCH_S).
    assert p50 <= budget_s + 0.3, (p50, worst, overload_s)
    assert worst <= budget_s + 0.8, (p50, worst, overload_s)
    # No backlog survives the overload: the next request is served at once.
    assert after.status_code == 200 and recovery_s < budget_s + BATCH_S
    registry = app.state.metrics.registry
    assert registry.get_sample_value("medslip_queue_depth") == 0
    assert registry.get_sample_value(
        "medslip_rejections_total", {"reason": "latency_budget_exceeded"}
    ) == len(refused)
