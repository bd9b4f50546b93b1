"""What `medslip-bench compare` records about where it ran: the served process's resident memory (read
from /proc, so the RSS target is checked on the real service, children included) and the hardware and
library versions, without which its figures cannot be compared with another run's.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch

from app.memory import proc_status_kib
from training.host import cpu_model


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the service's decode processes)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").is_file() else ""
        children.extend(int(value) for value in text.split())
    return sorted(set(children))


def service_memory(pid: int) -> dict[str, Any]:
    """Resident memory of the served process and of its children, in MB (10^6 bytes)."""
    own = proc_status_kib(pid)
    children = {child: proc_status_kib(child) for child in child_pids(pid)}
    return {
        "rss_mb": own.get("VmRSS", 0) * 1024 / 1e6,
        "hwm_mb": own.get("VmHWM", 0) * 1024 / 1e6,
        "children_rss_mb": [v.get("VmRSS", 0) * 1024 / 1e6 for v in children.values()],
    }


def hardware(threads: int) -> dict[str, Any]:
    """CPU, core and thread counts, runtime versions and the load average at the start: the context
    that says whether two runs' figures are comparable."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
