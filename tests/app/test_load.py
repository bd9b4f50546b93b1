"""The service under concurrency: batching observed, overload 503 + recovery, isolated failure, deadlines.

The model is held on a gate while requests pile up, so which requests batch together, which are
refused and which miss their deadline follows from the order the test imposes, not from how fast
this machine runs.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import Task
from collections.abc import Callable

import httpx
import numpy as np
from fastapi import FastAPI

from app.contract.bundle import Bundle
from app.settings import Settings
from tests.support.clock import eventually
from tests.support.images import dicom_bytes, png_bytes
from tests.support.service import HookedRunner, running_app

HEADERS = {"Content-Type": "image/png"}


class ControlledRunner(HookedRunner):
    """The real tiny model plus test knobs: a gate each run waits on (open unless closed by the test),
    an `entered` flag set when a run reaches it, and a one-shot failure (after warm-up)."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = threading.Event()
        self.calls = 0

    def hold(self) -> None:
        """Make the next runs wait at the gate until `release()`."""
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        self.calls += 1
        self.entered.set()
        if self.fail_next.is_set():
            self.fail_next.clear()
            raise RuntimeError("injected device failure")
        self.gate.wait(timeout=30)


def controlled(holder: list[ControlledRunner]) -> Callable[[Bundle, Settings], ControlledRunner]:
    def factory(bundle: Bundle, settings: Settings) -> ControlledRunner:
        holder.append(ControlledRunner(bundle))
        return holder[-1]

    return factory


def post_all(client: httpx.AsyncClient, bodies: list[bytes], headers: dict[str, str]) -> list[Task]:
    return [asyncio.create_task(client.post("/classify", content=b, headers=headers)) for b in bodies]


async def test_concurrent_requests_are_batched(make_app: Callable[..., FastAPI]) -> None:
    runners: list[ControlledRunner] = []
    app = make_app(controlled(runners), max_batch_size=8, max_delay_ms=100.0, worker_threads=4)
    async with running_app(app) as client:
        registry = app.state.metrics.registry
        images = [png_bytes(seed=i) for i in range(12)]
        runners[0].hold()
        first = post_all(client, images[:1], HEADERS)
        await eventually(runners[0].entered.is_set)  # the model is busy with the first request
        rest = post_all(client, images[1:], HEADERS)
        await eventually(lambda: registry.get_sample_value("medslip_queue_depth") == 11)
        runners[0].release()
        responses = await asyncio.gather(*first, *rest)
        assert all(r.status_code == 200 for r in responses)
        sizes = [r.json()["batch_size"] for r in responses]
        assert max(sizes) > 1
        count = registry.get_sample_value("medslip_batch_size_count")
        total = registry.get_sample_value("medslip_batch_size_sum")
        assert total == 12 and count is not None and count < 12  # fewer model calls than requests
        # Scores of a batched image equal its solo scores (padding and stacking do not leak between items).
        assert responses[1].json()["batch_size"] > 1
        solo = await client.post("/classify", content=images[1], headers=HEADERS)
        assert solo.json()["findings"] == responses[1].json()["findings"]


async def test_overload_gets_503_retry_after_and_recovers(make_app: Callable[..., FastAPI]) -> None:
    runners: list[ControlledRunner] = []
    app = make_app(
        controlled(runners), max_batch_size=1, batch_buckets=[1], max_queue_size=2, retry_after_s=3
    )
    async with running_app(app) as client:
        runners[0].hold()
        tasks = post_all(client, [png_bytes()] * 10, HEADERS)
        # While the model is held, at most three hold a place (one running, two queued or decoding:
        # the bound counts decoding requests too); only refusals can finish, and at least seven do.
        await eventually(lambda: sum(t.done() for t in tasks) >= 7)
        runners[0].release()
        responses = await asyncio.gather(*tasks)
        statuses = [r.status_code for r in responses]
        refused = [r for r in responses if r.status_code == 503]
        assert refused and 200 in statuses and set(statuses) <= {200, 503}
        assert all(r.json()["code"] == "queue_full" and r.headers["retry-after"] == "3" for r in refused)
        registry = app.state.metrics.registry
        assert registry.get_sample_value("medslip_rejections_total", {"reason": "queue_full"}) == len(refused)
        assert (await client.get("/health/ready")).status_code == 200
        after = await asyncio.gather(
            *(client.post("/classify", content=png_bytes(), headers=HEADERS) for _ in range(2))
        )
        assert [r.status_code for r in after] == [200, 200]
        assert app.state.metrics.registry.get_sample_value("medslip_queue_depth") == 0


async def test_failing_batch_is_isolated(make_app: Callable[..., FastAPI]) -> None:
    runners: list[ControlledRunner] = []
    async with running_app(make_app(controlled(runners))) as client:
        runners[0].fail_next.set()
        failed = await client.post("/classify", content=png_bytes(), headers=HEADERS)
        assert failed.status_code == 500
        problem = failed.json()
        assert problem["code"] == "inference_failed" and "RuntimeError" in problem["detail"]
        ok = await client.post("/ground", content=png_bytes(), headers=HEADERS)
        assert ok.status_code == 200
        assert (await client.get("/health/ready")).status_code == 200


async def test_deadline_header_gives_504(make_app: Callable[..., FastAPI]) -> None:
    runners: list[ControlledRunner] = []
    async with running_app(make_app(controlled(runners), max_batch_size=1, batch_buckets=[1])) as client:
        runners[0].hold()
        (slow,) = post_all(client, [png_bytes()], HEADERS)
        await eventually(runners[0].entered.is_set)  # the model is busy until released
        late = await client.post("/classify", content=png_bytes(), headers={**HEADERS, "X-Deadline-Ms": "50"})
        assert late.status_code == 504 and late.json()["code"] == "deadline_exceeded"
        runners[0].release()
        assert (await slow).status_code == 200
        in_time = await client.post(
            "/classify",
            content=dicom_bytes(),
            headers={"Content-Type": "application/dicom", "X-Deadline-Ms": "5000"},
        )
        assert in_time.status_code == 200


async def test_stat_priority_lane_is_labelled(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()
    async with running_app(app) as client:
        response = await client.post(
            "/classify", content=png_bytes(), headers={**HEADERS, "X-Priority": "stat"}
        )
        assert response.status_code == 200
        registry = app.state.metrics.registry
        assert registry.get_sample_value("medslip_queue_wait_seconds_count", {"priority": "stat"}) == 1
