"""Bundle metadata writer and verifier: hashes cover every file, tampering is detected."""

import json
from pathlib import Path

import pytest

from training.bundle import (
    IMAGE_BUNDLE_KEYS,
    BundleError,
    bundle_problems,
    sha256_file,
    verify_bundle,
    write_metadata,
)


def _bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "medslip-cxr" / "0.0.1"
    folder.mkdir(parents=True)
    (folder / "image_model.onnx").write_bytes(b"graph-bytes")
    (folder / "pathology_queries.npy").write_bytes(b"book")
    metadata = {key: {} for key in IMAGE_BUNDLE_KEYS}
    metadata["schema_version"] = 1
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
    assert sorted(files) == ["image_model.onnx", "pathology_queries.npy"]
    assert files["image_model.onnx"] == sha256_file(folder / "image_model.onnx")
    assert verify_bundle(folder)["schema_version"] == 1


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
