"""Host work overlaps the model: while the model thread runs one batch, the next requests are decoded
and preprocessed (worker threads here; decode processes by default), so a GPU is not left waiting on
the host between batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from fastapi import FastAPI

from app.contract.bundle import Bundle
from app.service import InferenceService
from app.settings import Settings
from tests.support.images import png_bytes
from tests.support.service import HookedRunner, running_app

MODEL_S = 0.25
DECODE_S = 0.15
Interval = tuple[float, float]


class TimedRunner(HookedRunner):
    """The tiny model taking MODEL_S per call (the GIL released, as ONNX Runtime does); records calls."""

    calls: ClassVar[list[Interval]] = []
    started = 0.0

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        self.started = time.perf_counter()
        time.sleep(MODEL_S)

    def after_run(self) -> None:
        TimedRunner.calls.append((self.started, time.perf_counter()))


def timed(bundle: Bundle, settings: Settings) -> TimedRunner:
    return TimedRunner(bundle)


def _overlap(a: Interval, b: Interval) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


async def test_decoding_overlaps_the_model_call(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[Interval] = []
    original = InferenceService._decode

    def slow_decode(self: InferenceService, *args: Any) -> Any:
        start = time.perf_counter()
        time.sleep(DECODE_S)  # stands in for a large film's codec
        result = original(self, *args)
        decodes.append((start, time.perf_counter()))
        return result

    monkeypatch.setattr(InferenceService, "_decode", slow_decode)
    TimedRunner.calls = []
    # One worker thread: decodes run one after another, so any overlap is with the model thread.
    app = make_app(timed, max_batch_size=1, batch_buckets=[1], max_delay_ms=0.0, worker_threads=1)
    async with running_app(app) as client:
        served_from = time.perf_counter()  # warm-up calls are over
        responses = await asyncio.gather(
            *(client.post("/classify", content=png_bytes(), headers={"Content-Type": "image/png"})
              for _ in range(4))
        )
        wall = time.perf_counter() - served_from
    assert [r.status_code for r in responses] == [200] * 4
    model_calls = [call for call in TimedRunner.calls if call[0] >= served_from]
    assert len(model_calls) == 4 and len(decodes) == 4
    overlapped = sum(_overlap(d, m) for d in decodes for m in model_calls)
    assert overlapped > DECODE_S  # decodes ran while the model thread was busy
    assert wall < 4 * (MODEL_S + DECODE_S) - DECODE_S  # faster than decode-then-model in series
