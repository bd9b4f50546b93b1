"""Freed heap memory goes back to the operating system after warm-up (glibc hosts)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from app.memory import proc_status_kib, release_free_memory

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
    reason="needs Linux /proc and glibc (malloc_trim)",
)


def _rss_mb() -> float:
    return proc_status_kib(os.getpid())["VmRSS"] / 1024


def test_freed_heap_chunks_leave_the_resident_memory() -> None:
    """100 MB freed in 100 kB heap chunks between chunks still in use stays resident until trimmed
    (free() can only shrink the top of the heap), then goes back to the operating system."""
    chunks = [bytearray(100_000) for _ in range(2_000)]  # below glibc's mmap threshold: heap chunks
    kept = chunks[1::2]  # every other chunk stays in use: the freed ones are holes, never the top
    del chunks
    before = _rss_mb()
    assert release_free_memory()
    after = _rss_mb()
    assert before - after > 50, (before, after)
    assert len(kept) == 1_000
