"""Bundle metadata writer and verifier: hashes cover every file, tampering is detected."""

import json
from pathlib import Path
from typing import Any

import pytest

from app.contract.bundle_files import (
    IMAGE_BUNDLE_KEYS,
    BundleError,
    bundle_problems,
    sha256_file,
    verify_bundle,
    write_metadata,
)
from app.contract.graphs import GRAPH_FILES, GRAPH_SIGNATURES, SCHEMA_VERSION


def _bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "medslip-cxr" / "0.0.1"
    folder.mkdir(parents=True)
    (folder / "image_model.onnx").write_bytes(b"graph-bytes")
    (folder / "classify_model.onnx").write_bytes(b"smaller-graph-bytes")
    (folder / "pathology_queries.npy").write_bytes(b"book")
    metadata: dict[str, Any] = {key: {} for key in IMAGE_BUNDLE_KEYS}
    metadata["schema_version"] = SCHEMA_VERSION
    metadata["graphs"] = {
        name: {"file": GRAPH_FILES[name], "inputs": {k: ["B"] for k in inputs},
               "outputs": {k: ["B"] for k in outputs}}
        for name, (inputs, outputs) in GRAPH_SIGNATURES.items()
    }
    write_metadata(folder, metadata)
    return folder


def test_sha256_of_a_known_content() -> None:
    # sha256("abc"), FIPS 180-2 test vector.
    path = Path(__file__).parent / "__sha_probe.tmp"
    try:
        path.write_bytes(b"abc")
        assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    finally:
        path.unlink()


def test_written_metadata_lists_every_file_but_itself(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    files = json.loads((folder / "metadata.json").read_text())["files"]
    assert sorted(files) == ["classify_model.onnx", "image_model.onnx", "pathology_queries.npy"]
    assert files["image_model.onnx"] == sha256_file(folder / "image_model.onnx")
    assert verify_bundle(folder)["schema_version"] == SCHEMA_VERSION


def test_graphs_that_break_the_schema_contract_are_problems(tmp_path: Path) -> None:
    """A schema-2 bundle without its classification graph, a graph with other outputs, and an unknown
    schema are each refused with the reason."""
    folder = _bundle(tmp_path)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["graphs"]["classify_model"]
    metadata["graphs"]["image_model"]["outputs"] = {"pathology_probs": []}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    problems = bundle_problems(folder)
    assert "schema 2 requires graph 'classify_model'" in problems
    assert any(p.startswith("graph 'image_model' must list outputs") for p in problems)
    metadata["schema_version"] = 99
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert bundle_problems(folder)[0].startswith("unsupported bundle schema_version 99")


def test_tampered_missing_and_extra_files_are_all_reported(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "image_model.onnx").write_bytes(b"graph-bytes, patched")
    (folder / "pathology_queries.npy").unlink()
    (folder / "payload.bin").write_bytes(b"x")
    problems = bundle_problems(folder)
    assert "sha256 mismatch for 'image_model.onnx'" in problems
    assert "listed file 'pathology_queries.npy' is missing" in problems
    assert "file 'payload.bin' is not listed in metadata" in problems
    with pytest.raises(BundleError, match="sha256 mismatch"):
        verify_bundle(folder)


def test_missing_keys_and_missing_metadata_are_problems(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["operating_points"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert bundle_problems(folder) == ["missing metadata key 'operating_points'"]
    (folder / "metadata.json").unlink()
    assert bundle_problems(folder)[0].startswith("cannot read metadata.json")
