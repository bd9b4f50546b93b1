"""The service must never import torch (its image ships without it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _assert_runs(code: str) -> None:
    """Run `code` in a fresh interpreter (nothing imported yet) and require it to succeed."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_service_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import app.bench, app.factory, app.main, app.service, app.runtime, app.textquery, app.postprocess\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    _assert_runs(code)


def test_the_contract_imports_neither_torch_nor_a_web_framework_at_run_time() -> None:
    """Every module of `app.contract` imported alone: what training and the bridge pull in with it."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import app.contract\n"
        "for info in pkgutil.walk_packages(app.contract.__path__, 'app.contract.'):\n"
        "    importlib.import_module(info.name)\n"
        "loaded = sorted(m for m in ('torch', 'fastapi', 'starlette') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    _assert_runs(code)
