"""Give the heap memory a process has freed back to the operating system (glibc ``malloc_trim``).

Why: the warm-up runs every batch bucket through every graph. ONNX Runtime frees those buffers, but
glibc keeps much of the freed heap mapped, so the service's resident memory after warm-up depended on
how the frees happened to fall: 796 and 1017 MB after two identical starts on the same host
(docs/benchmarks.md). Trimming once the warm-up is done leaves the resident memory at what the
service holds, not what it once touched.
"""

from __future__ import annotations

import ctypes

__all__ = ["release_free_memory"]


def release_free_memory() -> bool:
    """``malloc_trim(0)`` where the process's C library has it (glibc); False where it does not (musl,
    macOS). The symbol is looked up among those already loaded: no library search at start-up."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
