"""Static int8 variants: measured, written as a new bundle version within the bounds (or forced), served."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.contract.bundle import load_bundle
from app.contract.bundle_metadata import BundleMetadata
from app.runtime import OrtImageModel
from tests.support.int8_drift import auroc_figures
from tests.support.training.tiny_models import IMAGE_SIZE, write_tiny_checkpoints
from training.export.bundle import export_bundle
from training.export.int8_measure import decide
from training.export.int8_recipes import RECIPES
from training.export.int8_static import GraphVariant, build_variants, write_variant_bundle


@pytest.fixture(scope="module")
def tiny_variants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[GraphVariant]]]:
    """A tiny fp32 schema-2 bundle and its measured int8 variants (bounds wide open: random weights)."""
    tmp_path = tmp_path_factory.mktemp("int8")
    checkpoint, seg_checkpoint = write_tiny_checkpoints(tmp_path)
    bundle = export_bundle(checkpoint=checkpoint, seg_checkpoint=seg_checkpoint, name="tiny", version="1",
                           store=tmp_path / "store")
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32) for _ in range(8)]
    labels = [{"normal": i % 2} for i in range(4)]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    variants = build_variants(bundle, images[:4], images[4:], labels, scratch, findings=["normal"],
                              max_auroc_drift=1.0, min_map_cosine=-1.0, timing_repeats=1, timing_threads=(1,))
    yield bundle, variants


@pytest.mark.slow
def test_int8_variants_are_written_as_a_new_version_and_served(
    tiny_variants: tuple[Path, list[GraphVariant]],
) -> None:
    source, variants = tiny_variants
    assert [v.graph for v in variants] == ["classify_model", "image_model"]
    assert all(v.reasons == [] for v in variants)
    target = write_variant_bundle(source, "1-int8", variants, RECIPES["no-attention-minmax"],
                                  {"split": "train", "n_images": 4}, max_auroc_drift=1.0, min_map_cosine=-1.0)
    assert target == source.parent / "1-int8"
    assert BundleMetadata.problems(target) == []
    metadata = json.loads((target / "metadata.json").read_text())
    assert metadata["version"] == "1-int8"
    for variant in variants:
        entry = metadata["graphs"][variant.graph]
        assert entry["precision"] == "fp32" and entry["file"] == f"{variant.graph}.onnx"
        int8 = entry["variants"]["int8"]
        assert int8["file"] == f"{variant.graph}.int8.onnx" and int8["precision"] == "int8"
        assert int8["passed"] is True and int8["failed_bounds"] == []
        assert int8["drift_vs_fp32"]["auroc"]["normal"]["n"] == 4
        assert set(int8["cpu_timing"]["interleaved_median_ms"]) == {"b1_t1", "b8_t1"}
        assert (target / int8["file"]).stat().st_size < (target / entry["file"]).stat().st_size / 2
    full_drift = metadata["graphs"]["image_model"]["variants"]["int8"]["drift_vs_fp32"]
    assert "pathology_maps_mean_cosine" in full_drift
    runner = OrtImageModel(load_bundle(target), device="cpu", intra_op_threads=1, precision="int8")
    assert runner.precisions == {"image_model": "int8", "classify_model": "int8"}
    bundle = load_bundle(target)
    images = np.zeros((2, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    full = runner.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    assert full.pathology_maps is not None
    assert full.pathology_maps.shape[:2] == (2, len(bundle.pathology_names))
    probs = runner.run(images, bundle.pathology_queries, bundle.anatomy_queries, outputs=("pathology_probs",))
    assert probs.pathology_probs.shape == (2, len(bundle.pathology_names))
    with pytest.raises(RuntimeError, match="no int8 graph"):
        OrtImageModel(load_bundle(source), device="cpu", intra_op_threads=1, precision="int8")


@pytest.mark.slow
def test_out_of_bounds_variants_are_not_written_unless_forced(
    tiny_variants: tuple[Path, list[GraphVariant]],
) -> None:
    source, measured = tiny_variants
    drifted = [GraphVariant(v.graph, v.path, {**v.drift, "auroc": {"normal": auroc_figures(0.02)}},
                            decide({"auroc": {"normal": auroc_figures(0.02)}}), v.float_nodes, v.timing)
               for v in measured]
    assert all(v.reasons for v in drifted)
    assert write_variant_bundle(source, "2-int8", drifted, RECIPES["no-attention-minmax"], {}) is None
    assert not (source.parent / "2-int8").exists()
    assert not any(path.name.startswith(("2", ".2")) for path in source.parent.iterdir())
    forced = write_variant_bundle(source, "3-int8", drifted, RECIPES["no-attention-minmax"], {}, force=True)
    assert forced is not None and BundleMetadata.problems(forced) == []
    int8 = json.loads((forced / "metadata.json").read_text())["graphs"]["classify_model"]["variants"]["int8"]
    assert int8["passed"] is False and int8["failed_bounds"][0].startswith("normal: |AUROC drift| 0.0200")
