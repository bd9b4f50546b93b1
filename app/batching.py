"""Dynamic batcher: many concurrent requests -> few model calls (after BentoML's dispatcher).

Requests wait in a bounded asyncio queue (the `Priority.STAT` lane served first). A batch is released when it
holds `max_batch_size` requests or the oldest has waited `max_delay_ms`; with `eager` on, it is also
released at once when no other request is still being decoded (nobody is about to join, so waiting
would only add latency). The model call runs in a worker thread so the event loop keeps accepting.
An exception fails only that batch's requests.

Admission: besides the count bound, a request is refused (503 latency_budget_exceeded) when the
expected wait for its result, from the requests ahead and the measured time per batch
(`app.admission`), exceeds the latency budget; checked when it starts decoding and again when it is
queued. A request whose caller gave up (deadline, disconnect, shutdown) leaves the queue at once and
is never computed. Every job's result or error goes to its own future; nothing here knows HTTP.

Seams (as in BentoML's CorkDispatcher, which takes its clock and optimiser from outside): `admit()`
brackets the decode of a request that will submit soon; time comes from a `Clock` (monotonic seconds
and waiting with a deadline), so tests move time by hand instead of sleeping; counts go to a narrow
`BatchMetrics` protocol, so the batcher needs no Prometheus registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from app.admission import BatchTimer, expected_wait_s, retry_after_s
from app.errors import (
    DeadlineExceededError,
    InferenceFailedError,
    LatencyBudgetExceededError,
    QueueFullError,
    ShuttingDownError,
)

logger = logging.getLogger(__name__)

PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")
T = TypeVar("T")


class Priority(enum.StrEnum):
    """Queue lane of a request: `stat` requests are served before every routine one."""

    STAT = "stat"
    ROUTINE = "routine"


class Clock(Protocol):
    """Where the batcher reads time and waits with a deadline (`MonotonicClock` in the service)."""

    def now(self) -> float:
        """Monotonic seconds; deadlines passed to `Batcher.submit` are instants of this clock."""

    async def wait_for(self, awaitable: Awaitable[T], until: float | None) -> T:
        """Await `awaitable`; raise TimeoutError once `now()` reaches `until` (None: no deadline)."""


class MonotonicClock:
    """The real clock: `time.monotonic()` and `asyncio.wait_for`."""

    def now(self) -> float:
        return time.monotonic()

    async def wait_for(self, awaitable: Awaitable[T], until: float | None) -> T:
        timeout = None if until is None else max(0.0, until - time.monotonic())
        return await asyncio.wait_for(awaitable, timeout)


class BatchMetrics(Protocol):
    """What the batcher reports; `app.metrics.ServiceMetrics` implements it on Prometheus collectors."""

    def batch_released(self, reason: str, size: int) -> None:
        """A batch of `size` requests left the queue for `reason` (full, timeout, idle, drain)."""

    def queue_waited(self, priority: Priority, seconds: float) -> None:
        """A request of `priority` waited `seconds` in the queue before its batch was taken."""

    def batch_inferred(self, seconds: float) -> None:
        """A batch's model call took `seconds`."""

    def set_queue_depth(self, depth: int) -> None:
        """`depth` requests wait in the queue now."""


def bucket_size(count: int, buckets: Sequence[int]) -> int:
    """Smallest bucket holding `count` items (buckets sorted ascending); the largest if none does."""
    for size in buckets:
        if size >= count:
            return size
    return buckets[-1]


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the leading axis of (n, ...) up to (size, ...), so the runtime sees a warmed-up shape."""
    if batch.shape[0] >= size:
        return batch
    padding = np.zeros((size - batch.shape[0], *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, padding], axis=0)


@dataclass(frozen=True)
class BatchResult(Generic[ResultT]):
    """One request's share of a batch plus how it was served."""

    value: ResultT
    batch_size: int
    queue_s: float
    infer_s: float


@dataclass
class _Pending(Generic[PayloadT, ResultT]):
    payload: PayloadT
    future: asyncio.Future[BatchResult[ResultT]]
    enqueued: float
    deadline: float | None
    priority: Priority
    dequeued: float = field(default=0.0)


class Batcher(Generic[PayloadT, ResultT]):
    """Collects payloads; calls `process(list[payload]) -> list[result]` in `executor`, a batch at a time."""

    def __init__(
        self,
        process: Callable[[list[PayloadT]], list[ResultT]],
        *,
        executor: Executor,
        metrics: BatchMetrics,
        max_batch_size: int,
        max_delay_s: float,
        max_queue_size: int,
        retry_after_s: int,
        eager: bool = True,
        latency_budget_s: float | None = None,
        buckets: Sequence[int] | None = None,
        batch_seconds: Mapping[int, float] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._process = process
        self._executor = executor
        self._metrics = metrics
        self._max_batch = max_batch_size
        self._max_delay = max_delay_s
        self._max_queue = max_queue_size
        self._retry_after = retry_after_s
        self._eager = eager
        self._budget = latency_budget_s
        self._clock: Clock = clock or MonotonicClock()
        self.timer = BatchTimer(buckets or [max_batch_size], seed=batch_seconds)
        self._running: tuple[float, int] | None = None  # (clock start, batch size)
        self._incoming = 0
        self._stat: deque[_Pending[PayloadT, ResultT]] = deque()
        self._routine: deque[_Pending[PayloadT, ResultT]] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._stat) + len(self._routine)

    def _shutting_down(self) -> ShuttingDownError:
        return ShuttingDownError(
            "the service is draining; retry on another replica",
            retry_after_s=self._retry_after,
        )

    def expected_wait_s(
        self, priority: Priority = Priority.ROUTINE, *, include_incoming: bool = False
    ) -> float:
        """Expected seconds until a request queued now gets its result (see `app.admission`)."""
        ahead = len(self._stat) if priority == Priority.STAT else self.depth
        if include_incoming:
            ahead += self._incoming
        running_remaining = 0.0
        if self._running is not None:
            started, size = self._running
            running_remaining = max(0.0, self.timer.estimate(size) - (self._clock.now() - started))
        return expected_wait_s(
            self.timer, ahead=ahead, max_batch=self._max_batch, running_remaining_s=running_remaining
        )

    def _admit(self, priority: Priority, *, queued: int, include_incoming: bool) -> None:
        """Raise the refusal a new request gets now, if any (shutdown, queue bound, latency budget)."""
        if self._closing:
            raise self._shutting_down()
        if queued >= self._max_queue:
            raise QueueFullError(
                f"{queued} requests already queued or decoding",
                retry_after_s=self._retry_after,
            )
        if self._budget is None:
            return
        if queued == 0 and self._running is None:
            # An idle model serves a lone request at once: refusing it shortens nobody's wait, and a
            # run is the only thing that corrects an estimate measured on a slow moment (warm-up
            # under load), which would otherwise refuse every request for good.
            return
        expected = self.expected_wait_s(priority, include_incoming=include_incoming)
        if expected > self._budget:
            raise LatencyBudgetExceededError(
                f"expected wait {expected:.1f} s exceeds the latency budget of {self._budget:.1f} s",
                retry_after_s=retry_after_s(expected, self._budget, self._retry_after),
            )

    @contextlib.asynccontextmanager
    async def admit(self, priority: Priority = Priority.ROUTINE) -> AsyncIterator[None]:
        """Bracket the decode of a request that will probably submit soon: worth waiting for.

        Entering refuses (503) before any decode work is spent on a request that could not be queued
        anyway: queued plus decoding requests already fill the queue, or the expected wait (counting
        those decoding as ahead) exceeds the latency budget. Leaving (submitted, or failed) re-checks
        whether the batch should go, since one fewer request may join it.
        """
        self._admit(priority, queued=self.depth + self._incoming, include_incoming=True)
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming = max(0, self._incoming - 1)
            self._wakeup.set()

    def start(self) -> None:
        """Start the dispatcher task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever(), name="medslip-batcher")

    async def close(self) -> None:
        """Refuse new work, run everything already queued (reason "drain"), then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def abort(self) -> int:
        """Refuse new work and fail every queued request with 503 shutting_down; returns how many.

        A batch already running finishes and delivers its results.
        """
        self._closing = True
        aborted = 0
        for lane in (self._stat, self._routine):
            while lane:
                pending = lane.popleft()
                if not pending.future.done():
                    pending.future.set_exception(self._shutting_down())
                    aborted += 1
        self._metrics.set_queue_depth(self.depth)
        self._wakeup.set()
        return aborted

    async def submit(
        self, payload: PayloadT, *, priority: Priority = Priority.ROUTINE, deadline: float | None = None
    ) -> BatchResult[ResultT]:
        """Queue `payload`; `deadline` is an instant of the clock after which the caller gets 504."""
        lane = self._stat if priority == Priority.STAT else self._routine
        self._admit(priority, queued=self.depth, include_incoming=False)
        now = self._clock.now()
        if deadline is not None and deadline <= now:
            raise DeadlineExceededError("the deadline passed before the request was queued")
        future: asyncio.Future[BatchResult[ResultT]] = asyncio.get_running_loop().create_future()
        pending = _Pending(payload, future, now, deadline, priority)
        lane.append(pending)
        self._metrics.set_queue_depth(self.depth)
        self._wakeup.set()
        try:
            return await self._clock.wait_for(asyncio.shield(future), deadline)
        except TimeoutError:
            self._forget(pending)
            raise DeadlineExceededError("no result before the request's deadline") from None
        except asyncio.CancelledError:  # the caller is gone (disconnect, shutdown): never compute it
            self._forget(pending)
            raise

    def _forget(self, pending: _Pending[PayloadT, ResultT]) -> None:
        """Drop a request whose caller stopped waiting: out of the queue, its future cancelled."""
        for lane in (self._stat, self._routine):
            with contextlib.suppress(ValueError):
                lane.remove(pending)
        pending.future.cancel()  # a batch already holding it skips it (see _dispatch_forever)
        self._metrics.set_queue_depth(self.depth)
        self._wakeup.set()

    def _oldest_enqueued(self) -> float:
        return min(lane[0].enqueued for lane in (self._stat, self._routine) if lane)

    async def _wait_for_batch(self) -> str:
        """Sleep until a batch should be released; returns the reason (full, timeout, idle, drain, empty)."""
        while self.depth < self._max_batch and not self._closing:
            if self.depth == 0:  # every waiting request left (deadline, disconnect, abort)
                return "empty"
            if self._eager and self._incoming == 0:
                return "idle"
            release_at = self._oldest_enqueued() + self._max_delay
            if release_at <= self._clock.now():
                return "timeout"
            self._wakeup.clear()
            try:
                await self._clock.wait_for(self._wakeup.wait(), release_at)
            except TimeoutError:
                return "timeout"
        return "full" if self.depth >= self._max_batch else "drain"

    def _take(self) -> list[_Pending[PayloadT, ResultT]]:
        taken: list[_Pending[PayloadT, ResultT]] = []
        now = self._clock.now()
        for lane in (self._stat, self._routine):
            while lane and len(taken) < self._max_batch:
                pending = lane.popleft()
                pending.dequeued = now
                taken.append(pending)
        self._metrics.set_queue_depth(self.depth)
        return taken

    async def _dispatch_forever(self) -> None:
        while True:
            if self.depth == 0:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            reason = await self._wait_for_batch()
            if self.depth == 0:
                continue
            live = [p for p in self._take() if not p.future.done()]
            if live:
                await self._run_batch(live, reason)

    async def _run_batch(self, batch: list[_Pending[PayloadT, ResultT]], reason: str) -> None:
        self._metrics.batch_released(reason, len(batch))
        for pending in batch:
            self._metrics.queue_waited(pending.priority, pending.dequeued - pending.enqueued)
        start = self._clock.now()
        self._running = (start, len(batch))
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._process, [p.payload for p in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} inputs")
        except Exception as exc:  # one failing batch must not stop the dispatcher
            logger.error("batch failed", extra={"batch_size": len(batch), "error_type": type(exc).__name__})
            error = InferenceFailedError(f"the model failed on this request's batch ({type(exc).__name__})")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finally:
            self._running = None
        infer_s = self._clock.now() - start
        self.timer.observe(len(batch), infer_s)
        self._metrics.batch_inferred(infer_s)
        for pending, value in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(
                    BatchResult(value, len(batch), pending.dequeued - pending.enqueued, infer_s)
                )
