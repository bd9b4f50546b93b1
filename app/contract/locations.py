"""Where the repository's model store and the shared data live: one answer for the service, training,
benchmarks and tests.

A checkout keeps `model_store/` at its root and the public chest X-ray data beside it in
`../shared/data` (MEDSLIP_SHARED_DATA overrides it); nothing here reads anything at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MODEL_STORE", "REPO_ROOT", "SHARED_DATA_ENV", "shared_data_dir"]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_STORE = REPO_ROOT / "model_store"
SHARED_DATA_ENV = "MEDSLIP_SHARED_DATA"


def shared_data_dir() -> Path:
    """$MEDSLIP_SHARED_DATA, else `../shared/data` beside the repository (it may not exist: callers that
    need it check, and tests skip with a reason)."""
    env = os.environ.get(SHARED_DATA_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
