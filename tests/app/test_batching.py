"""Unit behaviour of the dynamic batcher with a plain-Python batch function."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.batching import Batcher, bucket_size, pad_batch
from app.errors import DeadlineExceededError, InferenceFailedError, QueueFullError, ShuttingDownError
from app.metrics import ServiceMetrics


class Recorder:
    """Batch function that records each batch, can block on a gate and can fail batches holding `poison`."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.gate.wait(timeout=10)
        self.batches.append(list(items))
        if -1 in items:
            raise RuntimeError("poisoned batch")
        return [i * 10 for i in items]


def make_batcher(recorder: Recorder, **overrides: float) -> tuple[Batcher[int, int], ServiceMetrics]:
    metrics = ServiceMetrics()
    options = {"max_batch_size": 4, "max_delay_s": 0.05, "max_queue_size": 8, "retry_after_s": 2, **overrides}
    batcher: Batcher[int, int] = Batcher(
        recorder,
        executor=ThreadPoolExecutor(1),
        metrics=metrics,
        max_batch_size=int(options["max_batch_size"]),
        max_delay_s=float(options["max_delay_s"]),
        max_queue_size=int(options["max_queue_size"]),
        retry_after_s=int(options["retry_after_s"]),
        eager=bool(options.get("eager", False)),
    )
    batcher.start()
    return batcher, metrics


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_bucket_size_and_padding() -> None:
    assert [bucket_size(n, [1, 2, 4, 8]) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 8]
    padded = pad_batch(np.ones((3, 2), np.float32), 4)  # (4, 2)
    assert padded.shape == (4, 2) and padded[3].sum() == 0 and padded[:3].sum() == 6


async def test_full_batch_released_before_delay() -> None:
    recorder = Recorder()
    batcher, metrics = make_batcher(recorder, max_delay_s=5.0)
    start = time.monotonic()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)))
    assert time.monotonic() - start < 2.0
    assert [r.value for r in results] == [0, 10, 20, 30] and {r.batch_size for r in results} == {4}
    assert recorder.batches == [[0, 1, 2, 3]]
    assert sample(metrics, "medslip_batches_total", reason="full") == 1
    await batcher.close()


async def test_partial_batch_released_after_delay() -> None:
    recorder = Recorder()
    batcher, metrics = make_batcher(recorder, max_delay_s=0.05)
    start = time.monotonic()
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2))
    assert time.monotonic() - start >= 0.04
    assert [r.batch_size for r in results] == [2, 2]
    assert sample(metrics, "medslip_batches_total", reason="timeout") == 1
    assert sample(metrics, "medslip_batch_size_sum") == 2
    await batcher.close()


async def test_eager_release_when_nobody_is_incoming() -> None:
    recorder = Recorder()
    batcher, metrics = make_batcher(recorder, max_delay_s=5.0, eager=True)
    start = time.monotonic()
    result = await batcher.submit(7)
    assert result.value == 70 and time.monotonic() - start < 1.0
    assert sample(metrics, "medslip_batches_total", reason="idle") == 1
    await batcher.close()


async def test_stat_lane_served_first() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher, _ = make_batcher(recorder, max_batch_size=2, max_delay_s=0.0)
    first = asyncio.create_task(batcher.submit(0))  # occupies the model while the others queue
    await asyncio.sleep(0.05)
    routine = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    stat = asyncio.create_task(batcher.submit(3, priority="stat"))
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await asyncio.gather(first, stat, *routine)
    assert recorder.batches[1][0] == 3  # the stat request jumps the two routine ones
    await batcher.close()


async def test_queue_full_then_recovers() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher, _ = make_batcher(recorder, max_batch_size=1, max_queue_size=2, max_delay_s=0.0)
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError) as refused:
        await batcher.submit(3)
    assert refused.value.headers["Retry-After"] == "2"
    recorder.gate.set()
    assert [r.value for r in await asyncio.gather(running, *queued)] == [0, 10, 20]
    assert (await batcher.submit(4)).value == 40
    await batcher.close()


async def test_failing_batch_fails_only_its_requests() -> None:
    recorder = Recorder()
    batcher, _ = make_batcher(recorder, max_batch_size=2, max_delay_s=0.02)
    bad = await asyncio.gather(batcher.submit(-1), batcher.submit(5), return_exceptions=True)
    assert all(isinstance(r, InferenceFailedError) for r in bad)
    assert "RuntimeError" in str(bad[0])
    good = await asyncio.gather(batcher.submit(6), batcher.submit(7))
    assert [r.value for r in good] == [60, 70]
    await batcher.close()


async def test_deadline_exceeded_while_queued() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher, _ = make_batcher(recorder, max_batch_size=1, max_delay_s=0.0)
    blocker = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.05)
    with pytest.raises(DeadlineExceededError):
        await batcher.submit(1, deadline=time.monotonic() + 0.05)
    assert batcher.depth == 0  # the expired request left the queue
    with pytest.raises(DeadlineExceededError):
        await batcher.submit(2, deadline=time.monotonic() - 1)
    recorder.gate.set()
    await blocker
    assert recorder.batches == [[0]]
    await batcher.close()


async def test_close_drains_queue_then_refuses() -> None:
    recorder = Recorder()
    batcher, metrics = make_batcher(recorder, max_batch_size=4, max_delay_s=10.0)
    pending = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.02)
    await batcher.close()
    assert [r.value for r in await asyncio.gather(*pending)] == [0, 10, 20]
    assert sample(metrics, "medslip_batches_total", reason="drain") == 1
    with pytest.raises(ShuttingDownError):
        await batcher.submit(9)


async def test_expect_refuses_when_queue_and_decoding_fill_the_bound() -> None:
    batcher, _ = make_batcher(Recorder(), max_queue_size=2)
    batcher.expect()
    batcher.expect()
    with pytest.raises(QueueFullError):
        batcher.expect()  # refused before any decode work
    batcher.unexpect()
    batcher.expect()
    await batcher.close()
    with pytest.raises(ShuttingDownError):
        batcher.expect()
