"""Run dicom3tools' dciodvfy on a data set; tests skip when it is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest


def dciodvfy_errors(ds: pydicom.Dataset, tmp_path: Path) -> list[str]:
    """The 'Error' lines dciodvfy prints for `ds` (warnings are allowed)."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
