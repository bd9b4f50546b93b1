"""Give the heap memory a process has freed back to the operating system (glibc ``malloc_trim``).

Why: the warm-up runs every batch bucket through every graph. ONNX Runtime frees those buffers, but
glibc keeps much of the freed heap mapped, so the service's resident memory after warm-up depended on
how the frees happened to fall: 796 and 1017 MB after two identical starts on the same host
(docs/benchmarks.md). Trimming once the warm-up is done leaves the resident memory at what the
service holds, not what it once touched.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["proc_status_kib", "release_free_memory", "service_memory"]


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


def proc_status_kib(pid: int, fields: Sequence[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """`fields` of /proc/<pid>/status in KiB ({} where there is no /proc): what the benchmarks and the
    memory tests read of a process's resident memory."""
    path = Path(f"/proc/{pid}/status")
    if not path.is_file():
        return {}
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[key] = int(rest.split()[0])
    return values


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the service's decode processes)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").is_file() else ""
        children.extend(int(value) for value in text.split())
    return sorted(set(children))


def service_memory(pid: int) -> dict[str, Any]:
    """Resident memory of a served process and of its children, in MB (10^6 bytes): what the benchmarks
    report of a running service."""
    own = proc_status_kib(pid)
    return {
        "rss_mb": own.get("VmRSS", 0) * 1024 / 1e6,
        "hwm_mb": own.get("VmHWM", 0) * 1024 / 1e6,
        "children_rss_mb": [proc_status_kib(child, ("VmRSS",)).get("VmRSS", 0) * 1024 / 1e6
                            for child in child_pids(pid)],
    }
