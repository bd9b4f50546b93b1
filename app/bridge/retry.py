"""Exponential backoff with jitter: shared by service calls and egress so both behave the same."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


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
        nominal = min(self.max_seconds, self.base_seconds * (2**attempt))
        delay = nominal * (0.5 + 0.5 * self.jitter())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return delay
