"""Latency-budget admission, dropped jobs and the drain's abort, on the batcher alone."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.admission import BatchTimer, expected_wait_s, retry_after_s
from app.batching import Batcher, BatchResult, Priority
from app.errors import LatencyBudgetExceededError, QueueFullError, ShuttingDownError
from app.metrics import ServiceMetrics
from tests.support.batches import GatedBatch
from tests.support.clock import ManualClock, until


def gated_batcher(
    gated: GatedBatch,
    pool: ThreadPoolExecutor,
    *,
    budget_s: float | None,
    batch_s: float = 1.0,
    max_queue: int = 64,
) -> Batcher[int, int]:
    batcher: Batcher[int, int] = Batcher(
        gated,
        executor=pool,
        metrics=ServiceMetrics(),
        max_batch_size=2,
        max_delay_s=0.0,
        max_queue_size=max_queue,
        retry_after_s=1,
        eager=True,
        latency_budget_s=budget_s,
        buckets=[1, 2],
        batch_seconds={1: batch_s, 2: batch_s},  # as if warm-up measured 1 s per batch
        clock=ManualClock(),  # never advanced: the running batch has its whole estimate left
    )
    batcher.start()
    return batcher


async def occupy_model(batcher: Batcher[int, int], gated: GatedBatch) -> asyncio.Task[BatchResult[int]]:
    running = asyncio.create_task(batcher.submit(0))
    await gated.entered.wait()
    return running


def test_batch_timer_estimates() -> None:
    timer = BatchTimer([1, 2, 4, 8], alpha=0.5)
    assert timer.estimate(3) == 0.0  # nothing measured: admit
    timer.observe(2, 0.2)
    assert timer.estimate(1) == pytest.approx(0.2)  # borrows the larger bucket: an upper bound
    assert timer.estimate(8) == pytest.approx(0.8)  # scales the smaller one linearly
    timer.observe(2, 0.4)
    assert timer.estimate(2) == pytest.approx(0.3)  # moving mean
    timer.observe(7, 1.0)  # counted in bucket 8
    assert timer.estimate(8) == pytest.approx(1.0)
    assert timer.estimate(5) == pytest.approx(1.0)


def test_expected_wait_counts_batches_ahead_and_the_running_one() -> None:
    timer = BatchTimer([1, 2], seed={1: 0.5, 2: 1.0})
    assert expected_wait_s(timer, ahead=0, max_batch=2, running_remaining_s=0.0) == pytest.approx(0.5)
    assert expected_wait_s(timer, ahead=1, max_batch=2, running_remaining_s=0.0) == pytest.approx(1.0)
    # 5 ahead + itself = three batches (2, 2, 2), after the 0.3 s left of the running one
    assert expected_wait_s(timer, ahead=5, max_batch=2, running_remaining_s=0.3) == pytest.approx(3.3)
    assert retry_after_s(3.3, 2.0, 1) == 2 and retry_after_s(2.1, 2.0, 3) == 3


async def test_requests_beyond_the_budget_are_refused_before_queueing(model_pool: ThreadPoolExecutor) -> None:
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=2.5)
    running = await occupy_model(batcher, gated)
    # The running batch has 1 s left; each queued pair adds 1 s: two pairs fit in 2.5 s.
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await until(lambda: batcher.depth == 2)
    with pytest.raises(LatencyBudgetExceededError) as refused:
        await batcher.submit(3)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1
    assert batcher.depth == 2  # the refused one never queued
    with pytest.raises(LatencyBudgetExceededError):
        async with batcher.admit():  # refused before any decode work too
            pass
    stat = asyncio.create_task(batcher.submit(4, priority=Priority.STAT))  # the stat lane is empty: in budget
    await until(lambda: batcher.depth == 3)
    gated.gate.set()
    assert [r.value for r in await asyncio.gather(running, stat, *queued)] == [0, 40, 10, 20]
    assert batcher.expected_wait_s() == pytest.approx(batcher.timer.estimate(1))
    await batcher.close()


async def test_an_idle_model_admits_a_lone_request_whatever_the_estimate(
    model_pool: ThreadPoolExecutor,
) -> None:
    """Warm-up measured 5 s per batch against a 2.5 s budget (a busy moment): an idle service still
    takes a lone request, and its run moves the estimate towards what the model takes now, where
    refusing everything would have frozen it. A busy model keeps refusing what the estimate puts
    beyond the budget."""
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=2.5, batch_s=5.0)
    running = await occupy_model(batcher, gated)  # idle: admitted despite the 5 s estimate
    with pytest.raises(LatencyBudgetExceededError):
        await batcher.submit(1)  # the model is busy: 5 s left of the running batch + 5 s
    gated.gate.set()
    assert (await running).value == 0
    assert batcher.timer.estimate(1) < 5.0  # the run (0 s on the test's clock) pulled the mean down
    async with batcher.admit():  # idle again: admitted
        pass
    assert (await batcher.submit(2)).value == 20
    await batcher.close()


async def test_admit_counts_decoding_requests_as_ahead(model_pool: ThreadPoolExecutor) -> None:
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=2.5, max_queue=64)
    async with contextlib.AsyncExitStack() as decoding:
        for _ in range(4):  # four requests decoding: two batches of 1 s once queued
            await decoding.enter_async_context(batcher.admit())
        with pytest.raises(LatencyBudgetExceededError):
            async with batcher.admit():  # a fifth would need a third batch: 3 s
                pass
    async with batcher.admit():  # the four left the bracket: in budget again
        pass
    gated.gate.set()
    await batcher.close()


async def test_without_a_budget_only_the_count_bound_refuses(model_pool: ThreadPoolExecutor) -> None:
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=None, max_queue=3)
    running = await occupy_model(batcher, gated)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
    await until(lambda: batcher.depth == 3)
    with pytest.raises(QueueFullError):
        await batcher.submit(4)
    gated.gate.set()
    await asyncio.gather(running, *queued)
    await batcher.close()


async def test_cancelled_caller_is_dropped_before_inference(model_pool: ThreadPoolExecutor) -> None:
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=None)
    running = await occupy_model(batcher, gated)
    gone = asyncio.create_task(batcher.submit(7))
    stays = asyncio.create_task(batcher.submit(8))
    await until(lambda: batcher.depth == 2)
    gone.cancel()  # the client hung up, or the server cut the request
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batcher.depth == 1
    gated.gate.set()
    await asyncio.gather(running, stays)
    assert gated.batches == [[0], [8]]  # 7 was never computed
    await batcher.close()


async def test_abort_fails_queued_requests_while_the_running_batch_finishes(
    model_pool: ThreadPoolExecutor,
) -> None:
    gated = GatedBatch(closed=True)
    batcher = gated_batcher(gated, model_pool, budget_s=None)
    running = await occupy_model(batcher, gated)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
    await until(lambda: batcher.depth == 3)
    assert batcher.abort() == 3
    for task in queued:
        with pytest.raises(ShuttingDownError) as cut:
            await task
        assert cut.value.retry_after_s == 1
    with pytest.raises(ShuttingDownError):
        async with batcher.admit():
            pass
    gated.gate.set()
    assert (await running).value == 0
    await batcher.close()
    assert gated.batches == [[0]]
