"""Run dicom3tools' dciodvfy on a data set; tests skip when it is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from app.bridge.results.codes import PRIVATE_SCHEME

#: Warnings about coded values (unknown scheme designators, codes outside a context group).
CODING_WARNING_MARKERS = ("Coding Scheme Designator", "Code Value", "Code Meaning", "context group", "CID")


def dciodvfy_lines(ds: pydicom.Dataset, tmp_path: Path) -> list[str]:
    """The 'Error' and 'Warning' lines dciodvfy prints for `ds`."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith(("Error", "Warning"))]


def dciodvfy_errors(ds: pydicom.Dataset, tmp_path: Path) -> list[str]:
    """The 'Error' lines dciodvfy prints for `ds` (warnings are allowed)."""
    return [line for line in dciodvfy_lines(ds, tmp_path) if line.startswith("Error")]


def private_scheme_uses(ds: pydicom.Dataset) -> int:
    """How many Coding Scheme Designators in `ds` (nested items included) name the private scheme.

    dciodvfy (2022) warns once for each of them, the declaration in the Coding Scheme Identification
    Sequence included; a standard code adds no warning.
    """
    count = 0

    def visit(dataset: pydicom.Dataset, element: pydicom.DataElement) -> None:
        nonlocal count
        count += element.keyword == "CodingSchemeDesignator" and element.value == PRIVATE_SCHEME

    ds.walk(visit)
    return count


def coding_warnings(lines: list[str]) -> list[str]:
    """The warnings about coding schemes or coded values among dciodvfy's lines."""
    warnings = [line for line in lines if line.startswith("Warning")]
    return [line for line in warnings if any(marker in line for marker in CODING_WARNING_MARKERS)]
