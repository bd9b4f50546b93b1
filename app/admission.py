"""Latency-budget admission: how long a new request would wait for its model result.

Why: a queue bounded only by count lets every accepted request wait behind up to 64 others; under
overload all of them finish late. Like BentoML's dispatcher, we estimate the wait from what is
ahead and the measured model time per batch, and refuse (503 + Retry-After) what would miss the
budget, so the requests we do accept finish in time and a backlog never builds up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


class BatchTimer:
    """Exponentially weighted mean of model-call seconds per batch bucket (padded batch size)."""

    def __init__(
        self, buckets: Sequence[int], *, alpha: float = 0.3, seed: Mapping[int, float] | None = None
    ) -> None:
        self._buckets = sorted(buckets)
        self._alpha = alpha
        self._mean: dict[int, float] = {}
        for size, seconds in (seed or {}).items():
            self.observe(size, seconds)

    def bucket(self, count: int) -> int:
        """Smallest bucket holding `count` requests; the largest when none does."""
        for size in self._buckets:
            if size >= count:
                return size
        return self._buckets[-1]

    def observe(self, count: int, seconds: float) -> None:
        """Fold one model call of `count` requests taking `seconds` into its bucket's mean."""
        key = self.bucket(count)
        previous = self._mean.get(key)
        self._mean[key] = seconds if previous is None else previous + self._alpha * (seconds - previous)

    def estimate(self, count: int) -> float:
        """Expected seconds of a model call of `count` requests; 0 before anything was measured.

        A bucket never measured borrows from the nearest larger one (an upper bound), else scales
        the nearest smaller one linearly (batch time grows at most linearly with its size on CPU).
        """
        if count <= 0:
            return 0.0
        key = self.bucket(count)
        if key in self._mean:
            return self._mean[key]
        larger = [b for b in self._mean if b > key]
        if larger:
            return self._mean[min(larger)]
        smaller = [b for b in self._mean if b < key]
        if smaller:
            nearest = max(smaller)
            return self._mean[nearest] * key / nearest
        return 0.0


def expected_wait_s(timer: BatchTimer, *, ahead: int, max_batch: int, running_remaining_s: float) -> float:
    """Seconds until a new request's result: the batch running now, the batches ahead, then its own.

    `ahead` requests are served before it, `max_batch` at a time; it rides in the batch after them.
    """
    total = ahead + 1
    full, rest = divmod(total, max_batch)
    wait = running_remaining_s + full * timer.estimate(max_batch)
    if rest:
        wait += timer.estimate(rest)
    return wait


def retry_after_s(expected_s: float, budget_s: float, minimum_s: int) -> int:
    """Seconds a refused client should wait: until the excess over the budget has drained."""
    return max(minimum_s, math.ceil(expected_s - budget_s))
