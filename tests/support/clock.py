"""A clock that moves only when a test says so, and bounded waiting on a real condition.

Why: tests of time-based behaviour (batch release after a delay, deadlines) that sleep on the wall
clock are slow on a quiet machine and flaky on a busy one. With `ManualClock` injected, a test
queues work, waits until the code under test is parked on the clock, then advances it: the order
of events is fixed by the test, and durations read from the clock are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ManualClock:
    """Implements `app.batching.Clock`: `now()` changes only through `advance()`."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    @property
    def waiting(self) -> int:
        """How many waits with a deadline are parked on this clock."""
        return len(self._timers)

    def advance(self, seconds: float) -> None:
        """Move time forward; every wait whose deadline is reached times out."""
        self._now += seconds
        for until, timer in self._timers:
            if until <= self._now and not timer.done():
                timer.set_result(None)

    async def wait_for(self, awaitable: Awaitable[T], until: float | None) -> T:
        if until is None:
            return await awaitable
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (until, timer)
        self._timers.append(entry)
        if until <= self._now:
            timer.set_result(None)
        try:
            either: set[asyncio.Future[Any]] = {task, timer}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._timers.remove(entry)
            timer.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        raise TimeoutError


async def until(condition: Callable[[], bool], *, yields: int = 1000) -> None:
    """Yield to the event loop until `condition()` holds; fail after `yields` turns (no wall time)."""
    for _ in range(yields):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def eventually(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, every_s: float = 0.005
) -> None:
    """Poll `condition()` (bounded) while worker threads make progress; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"condition did not hold within {timeout_s} s")
        await asyncio.sleep(every_s)
