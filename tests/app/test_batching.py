"""Unit behaviour of the dynamic batcher with a plain-Python batch function.

Time is a `ManualClock`: a test queues requests, waits until the batcher is parked, then moves the
clock; no test sleeps or reads the wall clock, and queue times are exact.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.batching import Batcher, Priority, bucket_size, pad_batch
from app.errors import DeadlineExceededError, InferenceFailedError, QueueFullError, ShuttingDownError
from app.metrics import ServiceMetrics
from tests.support.batches import GatedBatch
from tests.support.clock import ManualClock, until


def make_batcher(
    batch: GatedBatch, pool: ThreadPoolExecutor, clock: ManualClock, **overrides: float
) -> tuple[Batcher[int, int], ServiceMetrics]:
    metrics = ServiceMetrics()
    options = {"max_batch_size": 4, "max_delay_s": 0.05, "max_queue_size": 8, "retry_after_s": 2, **overrides}
    batcher: Batcher[int, int] = Batcher(
        batch,
        executor=pool,
        metrics=metrics,
        max_batch_size=int(options["max_batch_size"]),
        max_delay_s=float(options["max_delay_s"]),
        max_queue_size=int(options["max_queue_size"]),
        retry_after_s=int(options["retry_after_s"]),
        eager=bool(options.get("eager", False)),
        clock=clock,
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


async def test_full_batch_released_before_delay(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(), ManualClock()
    batcher, metrics = make_batcher(batch, model_pool, clock, max_delay_s=5.0)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)))  # the clock never moves
    assert [r.value for r in results] == [0, 10, 20, 30] and {r.batch_size for r in results} == {4}
    assert {r.queue_s for r in results} == {0.0}
    assert batch.batches == [[0, 1, 2, 3]]
    assert sample(metrics, "medslip_batches_total", reason="full") == 1
    await batcher.close()


async def test_partial_batch_released_after_delay(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(), ManualClock()
    batcher, metrics = make_batcher(batch, model_pool, clock, max_delay_s=0.05)
    waiting = asyncio.gather(batcher.submit(1), batcher.submit(2))
    await until(lambda: batcher.depth == 2 and clock.waiting == 1)  # parked on the release delay
    clock.advance(0.04)
    assert batch.batches == [] and batcher.depth == 2  # not before the delay
    clock.advance(0.01)
    results = await waiting
    assert [r.batch_size for r in results] == [2, 2]
    assert [r.queue_s for r in results] == pytest.approx([0.05, 0.05])
    assert sample(metrics, "medslip_batches_total", reason="timeout") == 1
    assert sample(metrics, "medslip_batch_size_sum") == 2
    await batcher.close()


async def test_eager_release_when_nobody_is_incoming(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(), ManualClock()
    batcher, metrics = make_batcher(batch, model_pool, clock, max_delay_s=5.0, eager=True)
    result = await batcher.submit(7)  # the clock never moves: released without waiting out the delay
    assert result.value == 70 and result.queue_s == 0.0
    assert sample(metrics, "medslip_batches_total", reason="idle") == 1
    await batcher.close()


async def test_stat_lane_served_first(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(closed=True), ManualClock()
    batcher, _ = make_batcher(batch, model_pool, clock, max_batch_size=2, max_delay_s=0.0)
    first = asyncio.create_task(batcher.submit(0))  # occupies the model while the others queue
    await batch.entered.wait()
    routine = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await until(lambda: batcher.depth == 2)
    stat = asyncio.create_task(batcher.submit(3, priority=Priority.STAT))
    await until(lambda: batcher.depth == 3)
    batch.gate.set()
    await asyncio.gather(first, stat, *routine)
    assert batch.batches[1][0] == 3  # the stat request jumps the two routine ones
    await batcher.close()


async def test_queue_full_then_recovers(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(closed=True), ManualClock()
    batcher, _ = make_batcher(batch, model_pool, clock, max_batch_size=1, max_queue_size=2, max_delay_s=0.0)
    running = asyncio.create_task(batcher.submit(0))
    await batch.entered.wait()
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await until(lambda: batcher.depth == 2)
    with pytest.raises(QueueFullError) as refused:
        await batcher.submit(3)
    assert refused.value.retry_after_s == 2
    batch.gate.set()
    assert [r.value for r in await asyncio.gather(running, *queued)] == [0, 10, 20]
    assert (await batcher.submit(4)).value == 40
    await batcher.close()


async def test_failing_batch_fails_only_its_requests(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(), ManualClock()
    batcher, _ = make_batcher(batch, model_pool, clock, max_batch_size=2, max_delay_s=0.02)
    bad = await asyncio.gather(batcher.submit(-1), batcher.submit(5), return_exceptions=True)
    assert all(isinstance(r, InferenceFailedError) for r in bad)
    assert "RuntimeError" in str(bad[0])
    good = await asyncio.gather(batcher.submit(6), batcher.submit(7))
    assert [r.value for r in good] == [60, 70]
    await batcher.close()


async def test_deadline_exceeded_while_queued(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(closed=True), ManualClock()
    batcher, _ = make_batcher(batch, model_pool, clock, max_batch_size=1, max_delay_s=0.0)
    blocker = asyncio.create_task(batcher.submit(0))
    await batch.entered.wait()
    late = asyncio.create_task(batcher.submit(1, deadline=clock.now() + 0.05))
    await until(lambda: batcher.depth == 1 and clock.waiting == 1)  # queued, waiting on its deadline
    clock.advance(0.05)
    with pytest.raises(DeadlineExceededError):
        await late
    assert batcher.depth == 0  # the expired request left the queue
    with pytest.raises(DeadlineExceededError):
        await batcher.submit(2, deadline=clock.now() - 1)
    batch.gate.set()
    await blocker
    assert batch.batches == [[0]]
    await batcher.close()


async def test_close_drains_queue_then_refuses(model_pool: ThreadPoolExecutor) -> None:
    batch, clock = GatedBatch(), ManualClock()
    batcher, metrics = make_batcher(batch, model_pool, clock, max_batch_size=4, max_delay_s=10.0)
    pending = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await until(lambda: batcher.depth == 3)
    await batcher.close()
    assert [r.value for r in await asyncio.gather(*pending)] == [0, 10, 20]
    assert sample(metrics, "medslip_batches_total", reason="drain") == 1
    with pytest.raises(ShuttingDownError):
        await batcher.submit(9)


async def test_admit_refuses_when_queue_and_decoding_fill_the_bound(model_pool: ThreadPoolExecutor) -> None:
    batcher, _ = make_batcher(GatedBatch(), model_pool, ManualClock(), max_queue_size=2)
    async with batcher.admit():
        async with batcher.admit():
            with pytest.raises(QueueFullError):
                async with batcher.admit():  # refused before any decode work
                    pass
        async with batcher.admit():  # one left the bracket: room again
            pass
    await batcher.close()
    with pytest.raises(ShuttingDownError):
        async with batcher.admit():
            pass
