"""The typed bundle metadata: written with hashes of every file, read, verified (tampering, missing keys,
wrong types, unknown schemas are refused), and the shipped bundles round-trip through it unchanged."""

import json
from pathlib import Path
from typing import Any

import pytest

from app.contract.bundle_files import BundleError, sha256_file
from app.contract.bundle_metadata import BundleMetadata, TextEncoderMetadata, metadata_class, read_document
from app.contract.graphs import GRAPH_FILES, GRAPH_SIGNATURES, SCHEMA_VERSION
from app.contract.locations import MODEL_STORE
from tests.fixtures.tiny_bundle import build_tiny_bundle


def _bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "medslip-cxr" / "0.0.1"
    folder.mkdir(parents=True)
    (folder / "image_model.onnx").write_bytes(b"graph-bytes")
    (folder / "classify_model.onnx").write_bytes(b"smaller-graph-bytes")
    (folder / "pathology_queries.npy").write_bytes(b"book")
    metadata: dict[str, Any] = {key: {} for key in BundleMetadata.REQUIRED_KEYS}
    metadata.update(
        schema_version=SCHEMA_VERSION, name="medslip-cxr", version="0.0.1", created="2026-01-01T00:00:00Z",
        description="test", intended_use="research only; not a medical device", text_encoder=None,
        pathology={"names": ["normal"], "embeddings_file": "pathology_queries.npy"},
        anatomy={"names": [], "embeddings_file": "pathology_queries.npy"},
        default_threshold=0.5, findings_reported=[],
    )
    metadata["graphs"] = {
        name: {"file": GRAPH_FILES[name], "inputs": {k: ["B"] for k in inputs},
               "outputs": {k: ["B"] for k in outputs}}
        for name, (inputs, outputs) in GRAPH_SIGNATURES.items()
    }
    BundleMetadata.parse(metadata).write(folder)
    return folder


def test_written_metadata_lists_every_file_but_itself(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    files = json.loads((folder / "metadata.json").read_text())["files"]
    assert sorted(files) == ["classify_model.onnx", "image_model.onnx", "pathology_queries.npy"]
    assert files["image_model.onnx"] == sha256_file(folder / "image_model.onnx")
    assert BundleMetadata.verify(folder).schema_version == SCHEMA_VERSION


def test_graphs_that_break_the_schema_contract_are_problems(tmp_path: Path) -> None:
    """A schema-2 bundle without its classification graph, a graph with other outputs, and an unknown
    schema are each refused with the reason."""
    folder = _bundle(tmp_path)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["graphs"]["classify_model"]
    metadata["graphs"]["image_model"]["outputs"] = {"pathology_probs": []}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    problems = BundleMetadata.problems(folder)
    assert "schema 2 requires graph 'classify_model'" in problems
    assert any(p.startswith("graph 'image_model' must list outputs") for p in problems)
    metadata["schema_version"] = 99
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert BundleMetadata.problems(folder)[0].startswith("unsupported bundle schema_version 99")


def test_tampered_missing_and_extra_files_are_all_reported(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "image_model.onnx").write_bytes(b"graph-bytes, patched")
    (folder / "pathology_queries.npy").unlink()
    (folder / "payload.bin").write_bytes(b"x")
    problems = BundleMetadata.problems(folder)
    assert "sha256 mismatch for 'image_model.onnx'" in problems
    assert "listed file 'pathology_queries.npy' is missing" in problems
    assert "file 'payload.bin' is not listed in metadata" in problems
    with pytest.raises(BundleError, match="sha256 mismatch"):
        BundleMetadata.verify(folder)


def test_missing_keys_and_missing_metadata_are_problems(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["operating_points"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert BundleMetadata.problems(folder) == ["missing metadata key 'operating_points'"]
    (folder / "metadata.json").unlink()
    assert BundleMetadata.problems(folder)[0].startswith("cannot read metadata.json")


def test_wrong_types_are_problems_without_quoting_the_values(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["default_threshold"] = "PATIENT^NAME"
    metadata["pathology"]["names"] = "normal"
    (folder / "metadata.json").write_text(json.dumps(metadata))
    problems = BundleMetadata.problems(folder)
    assert [p.split(":")[0] for p in problems] == [
        "metadata key 'pathology.names'", "metadata key 'default_threshold'"]
    assert not any("PATIENT" in p for p in problems)
    with pytest.raises(BundleError, match="default_threshold"):
        BundleMetadata.read(folder)


def test_read_names_an_unknown_schema_before_anything_else(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "metadata.json").write_text(json.dumps({"schema_version": 0, "name": "old"}))
    with pytest.raises(BundleError, match="unsupported bundle schema_version 0"):
        BundleMetadata.read(folder)


def test_written_metadata_reads_back_equal_and_keeps_unknown_keys(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    metadata = BundleMetadata.read(folder)
    metadata.training_data = {"summary": "none"}
    extended = BundleMetadata.parse({**metadata.document(), "future_section": {"kept": [1, 2.5]}})
    written = extended.write(folder)
    again = BundleMetadata.verify(folder)
    assert again == written and again.document()["future_section"] == {"kept": [1, 2.5]}
    assert list(again.document()) == [*BundleMetadata.REQUIRED_KEYS, "future_section"]


def test_tiny_bundles_of_both_kinds_verify(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path)
    encoder = tmp_path / "text-encoders" / "tiny-text" / "0.0.1"
    assert BundleMetadata.problems(bundle) == [] and TextEncoderMetadata.problems(encoder) == []
    assert metadata_class(read_document(encoder)["files"]) is TextEncoderMetadata
    assert metadata_class(read_document(bundle)["files"]) is BundleMetadata
    old = build_tiny_bundle(tmp_path / "schema1", schema_version=1)
    assert BundleMetadata.verify(old).graphs.keys() == {"image_model"}


def _shipped() -> list[Path]:
    return sorted(path.parent for path in MODEL_STORE.glob("**/metadata.json"))


@pytest.mark.parametrize("bundle_dir", _shipped(), ids=lambda path: str(path.relative_to(MODEL_STORE)))
def test_shipped_metadata_round_trips_byte_for_byte(bundle_dir: Path, tmp_path: Path) -> None:
    """Every bundle in model_store/ (the served medslip-cxr and its text encoder) reads through the typed
    model and writes back the very bytes it was read from: the model loses nothing the exporter wrote."""
    shipped = (bundle_dir / "metadata.json").read_bytes()
    kind = metadata_class(read_document(bundle_dir)["files"])
    metadata = kind.read(bundle_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in metadata.files:  # the hashes are recomputed from the files: write them where they are
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).symlink_to(bundle_dir / name)
    metadata.write(copy)
    assert (copy / "metadata.json").read_bytes() == shipped
