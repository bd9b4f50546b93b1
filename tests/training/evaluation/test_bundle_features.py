"""The trunk grid and body prior read out of an exported graph are the model's own, and the bundle
comparison scores its served maps on real NIH boxes."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.support.training.tiny_models import IMAGE_SIZE, write_tiny_checkpoints
from training.data.manifest import write_manifest
from training.data.sources import read_nih_cxr14
from training.evaluation import compare_grounding
from training.evaluation.bundle_features import (
    GROUND_GRAPH,
    BundleFeatures,
    FeatureGraphError,
    feature_tensors,
)
from training.evaluation.grounding_evidence import checkpoint_source
from training.export.bundle import export_bundle, load_models


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp_path = tmp_path_factory.mktemp("features")
    checkpoint, seg_checkpoint = write_tiny_checkpoints(tmp_path, prior_head=True)
    bundle = export_bundle(checkpoint=checkpoint, seg_checkpoint=seg_checkpoint, name="tiny", version="1",
                           store=tmp_path / "store")
    return bundle, checkpoint, seg_checkpoint


def test_the_graph_returns_the_trunk_grid_and_the_body_prior_of_the_checkpoint(
        exported: tuple[Path, Path, Path]) -> None:
    bundle, checkpoint, seg_checkpoint = exported
    image = np.random.default_rng(0).standard_normal((1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    grid, prior, served = BundleFeatures(bundle)(image)
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    assert segmentation is not None
    expected_grid, expected_prior = checkpoint_source(model.eval(), segmentation.eval())(image)
    assert grid.shape == expected_grid.shape and prior.shape == expected_prior.shape
    torch.testing.assert_close(grid, expected_grid, atol=2e-2, rtol=2e-2)  # fp16 weights in the bundle
    torch.testing.assert_close(prior, expected_prior, atol=2e-3, rtol=2e-3)
    assert served.shape[-2:] == grid.shape[-2:]
    torch.testing.assert_close(served.sum(dim=(-2, -1)), torch.ones(served.shape[:2]), atol=1e-4, rtol=0)


def test_a_graph_without_a_body_prior_is_refused(exported: tuple[Path, Path, Path]) -> None:
    graph = onnx.load(str(exported[0] / GROUND_GRAPH)).graph
    pools = [node for node in graph.node if node.op_type == "MaxPool"]
    prior_pool = pools[-1]
    prior_pool.op_type = "Identity"  # the one-cell dilation gone: no prior to find
    del prior_pool.attribute[:]
    with pytest.raises(FeatureGraphError, match="body prior"):
        feature_tensors(graph)


def test_the_bundle_comparison_scores_every_nih_box(
        exported: tuple[Path, Path, Path], shared_data: Path, tmp_path: Path) -> None:
    boxed = [r for r in read_nih_cxr14(shared_data / "nih-cxr14") if r.boxes][:2]
    manifest = tmp_path / "boxed.jsonl"
    write_manifest(boxed, manifest)
    out = tmp_path / "grounding.json"
    assert compare_grounding.main(["--bundle", str(exported[0]), "--manifest", str(manifest),
                                   "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {compare_grounding.SERVED, "uniform_prior"}
    assert {figures["n"] for figures in results.values()} == {sum(len(r.boxes) for r in boxed)}
