"""Bundle metadata and integrity: every file of a bundle is listed in `metadata.json` with its sha256.

One definition of the bundle's file contract (docs/contracts.md, "Bundle") for both sides: the exporter
writes `metadata.json` with `write_metadata`, and the service (`app.contract.bundle.load_bundle`), CI and the
exporter's own check refuse a bundle by the same `file_problems`: a listed file missing or changed, or
a file slipped in without being listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.contract.graphs import graph_problems

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
#: Text-encoder bundles have their own, unchanged schema (image bundles: app/contract/graphs.py).
TEXT_SCHEMA_VERSION = 1

#: Top-level keys every image-model bundle's metadata must have (docs/contracts.md).
IMAGE_BUNDLE_KEYS: tuple[str, ...] = (
    "schema_version", "name", "version", "created", "description", "intended_use", "architecture",
    "preprocessing", "graphs", "text_encoder", "pathology", "anatomy", "operating_points",
    "default_threshold", "findings_reported", "segmentation", "training_data", "metrics", "files",
)
#: Top-level keys every text-encoder bundle's metadata must have.
TEXT_BUNDLE_KEYS: tuple[str, ...] = (
    "schema_version", "name", "version", "dim", "max_length", "pooling", "normalize", "files",
)

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


def write_metadata(bundle_dir: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write `metadata.json` with its `files` hashes recomputed from disk; returns what was written.

    Written last, after every other file, so the hashes describe the final bundle.
    """
    document = dict(metadata)
    document["files"] = bundle_files(bundle_dir)
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    (bundle_dir / METADATA_FILE).write_text(text, encoding="utf-8")
    logger.info("wrote %s with %d file hashes", bundle_dir / METADATA_FILE, len(document["files"]))
    return document


def read_metadata(bundle_dir: Path) -> dict[str, Any]:
    """Parsed `metadata.json`; BundleError when absent or not a JSON object."""
    path = bundle_dir / METADATA_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {METADATA_FILE}: {exc}") from exc
    if not isinstance(document, dict):
        raise BundleError(f"{METADATA_FILE} is not a JSON object")
    return document


def bundle_problems(bundle_dir: Path, required_keys: tuple[str, ...] | None = None) -> list[str]:
    """Every reason the bundle is not intact (empty list = intact).

    Checks the required keys (image or text bundle, guessed from the files when not given), that every
    listed file exists with its recorded sha256, and that no unlisted file was slipped in.
    """
    try:
        metadata = read_metadata(bundle_dir)
    except BundleError as exc:
        return [str(exc)]
    listed = metadata.get("files")
    if not isinstance(listed, dict):
        return ["metadata has no 'files' mapping"]
    if required_keys is None:
        required_keys = TEXT_BUNDLE_KEYS if "text_encoder.onnx" in listed else IMAGE_BUNDLE_KEYS
    problems = [f"missing metadata key {key!r}" for key in required_keys if key not in metadata]
    if required_keys == TEXT_BUNDLE_KEYS:
        if metadata.get("schema_version") != TEXT_SCHEMA_VERSION:
            problems.append(
                f"schema_version is {metadata.get('schema_version')!r}, expected {TEXT_SCHEMA_VERSION}"
            )
    else:
        graphs = metadata.get("graphs")
        graphs = graphs if isinstance(graphs, dict) else {}
        problems.extend(graph_problems(metadata.get("schema_version"), graphs))
    problems.extend(file_problems(bundle_dir, listed))
    return problems


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


def verify_bundle(bundle_dir: Path, required_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Raise BundleError listing every problem; returns the metadata of an intact bundle."""
    problems = bundle_problems(bundle_dir, required_keys)
    if problems:
        raise BundleError(f"bundle {bundle_dir.name}: " + "; ".join(problems))
    return read_metadata(bundle_dir)
