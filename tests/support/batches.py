"""A plain-Python batch function for batcher tests: records batches, blocks on a gate, fails on -1."""

from __future__ import annotations

import asyncio
import threading


class GatedBatch:
    """Batch function (runs in the model thread) that multiplies by 10.

    `entered` (an asyncio event, set from the model thread) says a batch has reached the function;
    it then blocks until `gate` is set (open from the start unless `closed`), records the batch, and
    fails the whole batch when it holds -1. Build it inside the test's event loop.
    """

    def __init__(self, *, closed: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.gate = threading.Event()
        if not closed:
            self.gate.set()
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self._loop.call_soon_threadsafe(self.entered.set)
        self.gate.wait(timeout=10)
        self.batches.append(list(items))
        if -1 in items:
            raise RuntimeError("poisoned batch")
        return [i * 10 for i in items]
