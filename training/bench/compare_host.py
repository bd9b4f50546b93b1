"""What `medslip-bench compare` records about where it ran: the served process's resident memory (read
from /proc, so the RSS target is checked on the real service, children included: `app.memory`) and the
hardware and library versions, without which its figures cannot be compared with another run's.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import onnxruntime as ort
import torch

from training.host import cpu_model


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
