"""Timing several pieces of work side by side: every round calls each once, the start rotating, so a
busy host slows them all alike and their ratios stay comparable. Used by `medslip-bench compare` and by
`medslip-quantize-int8`'s fp32 / int8 timing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One thing timed: `call()` does the whole unit of work once."""

    name: str
    group: str  # ort | ort-stored | eager | official | http | decode
    batch: int
    call: Callable[[], object]


def interleave(
    candidates: Sequence[Candidate],
    rounds: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, list[float]], list[str]]:
    """Milliseconds per call of every candidate over `rounds` rounds; each round calls every candidate
    once, starting one place further along the list than the round before. `warmup` untimed rounds
    come first. Returns (samples by name, the timed call order)."""
    for _ in range(warmup):
        for candidate in candidates:
            candidate.call()
    samples: dict[str, list[float]] = {c.name: [] for c in candidates}
    order: list[str] = []
    count = len(candidates)
    for round_index in range(rounds):
        shift = round_index % count if count else 0
        for candidate in [*candidates[shift:], *candidates[:shift]]:
            start = clock()
            candidate.call()
            samples[candidate.name].append((clock() - start) * 1000.0)
            order.append(candidate.name)
    return samples, order
