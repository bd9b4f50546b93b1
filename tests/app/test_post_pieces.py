"""Postprocessing pieces run side by side: one worker-pool piece per `/ground` heat map and per
`/segment` mask, so a many-finding answer uses every core. Each test lets a piece finish only once a
second piece has started (a barrier), which a one-at-a-time postprocess never reaches."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from threadpoolctl import threadpool_info, threadpool_limits

import app.service as service_module
from tests.support.images import png_bytes
from tests.support.service import running_app

PNG = {"Content-Type": "image/png"}
BARRIER_TIMEOUT_S = 10.0  # bounded: a sequential postprocess breaks the barrier instead of hanging


def blas_threads() -> list[int]:
    """Thread counts of the BLAS libraries loaded in this process (one entry per library)."""
    return [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"]


@pytest.fixture
def two_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Wrap a postprocessing function of app.service so each call waits for a second one to start."""
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)

    def wrap(name: str) -> None:
        original = getattr(service_module, name)

        def waiting(*args: Any, **kwargs: Any) -> Any:
            barrier.wait()  # raises BrokenBarrierError (a 500) if no other piece runs meanwhile
            return original(*args, **kwargs)

        monkeypatch.setattr(service_module, name, waiting)

    yield wrap
    barrier.abort()  # never leave a worker waiting past the test


async def test_ground_heat_maps_are_computed_side_by_side_in_request_order(
    make_app: Callable[..., FastAPI], two_at_once: Callable[[str], None]
) -> None:
    findings = ["effusion", "pneumonia"]
    async with running_app(make_app(worker_threads=2)) as client:
        two_at_once("grounding")
        response = await client.post(
            "/ground", params={"findings": findings}, content=png_bytes(), headers=PNG
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [f["name"] for f in body["findings"]] == findings
    assert all(f["heatmap"]["png_base64"] for f in body["findings"])


async def test_segment_masks_are_computed_side_by_side_findings_first(
    make_app: Callable[..., FastAPI], two_at_once: Callable[[str], None]
) -> None:
    params = {"anatomy": ["heart", "left_lung"], "findings": ["effusion", "pneumonia"]}
    async with running_app(make_app(worker_threads=4)) as client:
        two_at_once("mask_payload")
        response = await client.post("/segment", params=params, content=png_bytes(), headers=PNG)
    assert response.status_code == 200, response.text
    masks = response.json()["masks"]
    assert [(m["name"], m["kind"]) for m in masks] == [
        ("effusion", "finding"), ("pneumonia", "finding"), ("heart", "anatomy"), ("left_lung", "anatomy")
    ]


async def test_a_ground_answer_equals_the_same_request_postprocessed_one_piece_at_a_time(
    make_app: Callable[..., FastAPI],
) -> None:
    """One worker thread runs the pieces one after another: the answer is the same, entry for entry."""
    findings = ["effusion", "pneumonia", "nodule"]

    async def ground(workers: int) -> list[dict[str, Any]]:
        async with running_app(make_app(worker_threads=workers)) as client:
            response = await client.post(
                "/ground", params={"findings": findings}, content=png_bytes(seed=3), headers=PNG
            )
        assert response.status_code == 200, response.text
        return list(response.json()["findings"])

    assert await ground(1) == await ground(3)


async def test_a_started_service_runs_blas_on_one_thread(make_app: Callable[..., FastAPI]) -> None:
    """Started apps cap numpy's BLAS at one thread per call (app/blas.py); pieces supply the parallelism.
    Two threads first, so the cap is the app's doing whatever the test process started with."""
    threadpool_limits(limits=2, user_api="blas")
    assert set(blas_threads()) == {2}
    async with running_app(make_app()) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert blas_threads() and set(blas_threads()) == {1}
    product = np.ones((64, 14), np.float32) @ np.ones((14, 64), np.float32)  # still computes
    assert float(product[0, 0]) == 14.0
