"""The service must never import torch (its image ships without it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_service_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import app.bench, app.factory, app.main, app.service, app.runtime, app.textquery, app.postprocess\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
