"""The host a figure was measured on: CPU model and instruction-set flags, read once per call from
/proc/cpuinfo (platform's answer elsewhere). Every benchmark, card and quantisation record names its
CPU through this module, so they name it the same way."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(key: str) -> str | None:
    try:
        text = CPUINFO.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def cpu_model() -> str:
    """The CPU model name ("AMD EPYC", ...); platform.processor() or the machine type elsewhere."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (avx512_bf16, amx_tile, ...); empty where they cannot be read."""
    return set((_cpuinfo_field("flags") or "").split())
