"""Bundle integrity: every file of a bundle is listed in `metadata.json` with its sha256.

One definition of the bundle's file rule (docs/contracts.md, "Bundle") for both sides: the exporter
writes the hashes (`BundleMetadata.write`, app/contract/bundle_metadata.py), and the service, CI and
the exporter's own check refuse a bundle by the same `file_problems`: a listed file missing or changed,
or a file slipped in without being listed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
_CHUNK = 1 << 20


class BundleError(RuntimeError):
    """A bundle that is incomplete or whose files do not match their recorded hashes."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large graphs do not need to fit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(bundle_dir: Path) -> dict[str, str]:
    """sha256 of every file under the bundle (POSIX relative paths), metadata.json excluded."""
    hashes: dict[str, str] = {}
    for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(bundle_dir).as_posix()
        if relative != METADATA_FILE:
            hashes[relative] = sha256_file(path)
    return hashes


def file_problems(bundle_dir: Path, listed: Mapping[str, str]) -> list[str]:
    """Every listed file that is missing or does not match its sha256, and every file under the bundle
    that is not listed (metadata.json aside); empty when the files are exactly what was exported."""
    actual = bundle_files(bundle_dir)
    problems = []
    for name, expected in listed.items():
        if name not in actual:
            problems.append(f"listed file {name!r} is missing")
        elif actual[name] != expected:
            problems.append(f"sha256 mismatch for {name!r}")
    problems.extend(f"file {name!r} is not listed in metadata" for name in actual if name not in listed)
    return problems
