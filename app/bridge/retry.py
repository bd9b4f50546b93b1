"""Backoff and give-up rules shared by service calls and egress, so both behave the same.

Two kinds of failure are told apart. An *outage* (the inference service or the PACS unreachable,
overloaded, restarting) is retried with capped exponential backoff for a whole window, hours by
default, because maintenance windows last that long and the built results wait safely in the spool.
A *fault* (a result object that cannot be built, a spool file gone) will not heal by waiting, so it
gets a few tries only. Time comes from an injected clock: tests drive hours of outage without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Stages whose failures are outages of a peer (retried for the window), not faults of the instance.
OUTAGE_STAGES = frozenset({"inference", "egress"})


@dataclass(frozen=True)
class Backoff:
    """delay(n) = min(cap, base * 2**n), scaled by a jitter factor in [0.5, 1).

    Jitter spreads retries of many bridges hitting one recovering service; the lower bound of half
    the nominal delay keeps the backoff meaningful.
    """

    base_seconds: float = 1.0
    max_seconds: float = 60.0
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based); a server's Retry-After wins if longer."""
        nominal = min(self.max_seconds, self.base_seconds * (2.0 ** min(attempt, 64)))
        delay = nominal * (0.5 + 0.5 * self.jitter())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return delay


@dataclass(frozen=True)
class RetryWindow:
    """When to try an instance again after its `attempts`-th failure, or None: dead-letter it now."""

    backoff: Backoff = field(default_factory=Backoff)
    window_seconds: float = 6 * 3600.0
    max_attempts: int = 5
    clock: Callable[[], float] = time.time

    def next_attempt_at(self, stage: str, attempts: int, first_failure_at: float) -> float | None:
        now = self.clock()
        if stage in OUTAGE_STAGES:
            if now - first_failure_at >= self.window_seconds:
                return None
        elif attempts >= self.max_attempts:
            return None
        return now + self.backoff.delay(attempts - 1)
