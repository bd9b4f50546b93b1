"""Graceful drain on SIGTERM: stop looking ready, let in-flight requests finish, then cut the rest cleanly.

Why: a load balancer needs readiness to fail while the process still answers, and a request that
cannot finish in time deserves a 503 it can retry elsewhere, not a reset or a bare 500. Sequence
(`run_drain`): readiness and new inference requests answer 503 shutting_down at once; requests
already in flight get `timeout_s` to finish; then every request still queued gets 503
shutting_down (a batch already running finishes). The server then stops (see app/server.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


class InFlight:
    """Counts HTTP requests being handled; the drain waits until none is left."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count = max(0, self._count - 1)
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


async def run_drain(in_flight: InFlight, timeout_s: float, abort_queued: Callable[[], int]) -> bool:
    """Mark draining, wait up to `timeout_s` for in-flight requests, then abort what is queued.

    Returns True when every request finished within the timeout.
    """
    in_flight.draining = True
    logger.info("draining", extra={"in_flight": in_flight.count, "timeout_s": timeout_s})
    try:
        await asyncio.wait_for(in_flight.wait_idle(), timeout_s)
    except TimeoutError:
        aborted = abort_queued()
        logger.warning(
            "drain timeout: queued requests refused", extra={"aborted": aborted, "in_flight": in_flight.count}
        )
        return False
    logger.info("drained")
    return True
