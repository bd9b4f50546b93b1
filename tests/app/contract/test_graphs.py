"""Per-endpoint graphs: the contract's checks, which graph a request runs, old bundles, precisions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi import FastAPI
from onnx import TensorProto
from onnxruntime.transformers.float16 import convert_float_to_float16

from app.contract.bundle import Bundle, BundleError, load_bundle
from app.contract.graphs import (
    CLASSIFY_GRAPH,
    ENDPOINT_OUTPUTS,
    FULL_GRAPH,
    GRAPH_SIGNATURES,
    GROUND_GRAPH,
    GraphContractError,
    choose_graph,
    graph_file,
    graph_problems,
)
from app.contract.vocabulary import OUTPUT_NAMES
from app.graph_precision import fp32_graph_bytes, is_fp16
from app.runtime import CPU, OrtImageModel
from app.settings import Settings
from tests.fixtures.tiny_bundle import build_tiny_bundle
from tests.support.images import png_bytes
from tests.support.service import HookedRunner, running_app


def test_each_endpoint_runs_the_cheapest_graph_with_its_outputs() -> None:
    both = (FULL_GRAPH, CLASSIFY_GRAPH)
    assert choose_graph(ENDPOINT_OUTPUTS["classify"], both) == CLASSIFY_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["ground"], both) == FULL_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["segment"], both) == FULL_GRAPH
    mixed = ENDPOINT_OUTPUTS["classify"] | ENDPOINT_OUTPUTS["ground"]
    assert choose_graph(mixed, both) == FULL_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["classify"], (FULL_GRAPH,)) == FULL_GRAPH  # schema 1
    with pytest.raises(GraphContractError, match="segmentation_logits"):
        choose_graph(ENDPOINT_OUTPUTS["segment"], (CLASSIFY_GRAPH,))


def test_a_ground_graph_serves_ground_but_never_masks() -> None:
    """A bundle whose maps' prior has its own head carries `ground_model`: /ground skips the mask
    decoder, /segment and a batch mixing it with /ground still run the full graph."""
    three = (FULL_GRAPH, CLASSIFY_GRAPH, GROUND_GRAPH)
    assert choose_graph(ENDPOINT_OUTPUTS["ground"], three) == GROUND_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["classify"], three) == CLASSIFY_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["classify"] | ENDPOINT_OUTPUTS["ground"], three) == GROUND_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["segment"], three) == FULL_GRAPH
    assert choose_graph(ENDPOINT_OUTPUTS["ground"] | ENDPOINT_OUTPUTS["segment"], three) == FULL_GRAPH
    assert "segmentation_logits" not in GRAPH_SIGNATURES[GROUND_GRAPH][1]
    assert set(GRAPH_SIGNATURES[GROUND_GRAPH][1]) == ENDPOINT_OUTPUTS["ground"]


def test_graph_problems_name_what_is_wrong() -> None:
    full = {
        "file": "image_model.onnx",
        "inputs": dict.fromkeys(("image", "pathology_queries", "anatomy_queries")),
        "outputs": dict.fromkeys(OUTPUT_NAMES),
    }
    assert graph_problems(1, {FULL_GRAPH: full}) == []
    assert graph_problems(2, {FULL_GRAPH: full}) == ["schema 2 requires graph 'classify_model'"]
    classify = {"file": "classify_model.onnx", "inputs": dict.fromkeys(("image", "pathology_queries")),
                "outputs": dict.fromkeys(("pathology_probs",))}
    ground = {**full, "file": "ground_model.onnx", "outputs": dict.fromkeys(OUTPUT_NAMES[:4])}
    assert graph_problems(2, {FULL_GRAPH: full, CLASSIFY_GRAPH: classify, GROUND_GRAPH: ground}) == []
    assert graph_problems(2, {FULL_GRAPH: full, CLASSIFY_GRAPH: classify, GROUND_GRAPH: full}) == [
        f"graph 'ground_model' must list outputs {list(OUTPUT_NAMES[:4])}"
    ]
    assert graph_problems(3, {})[0].startswith("unsupported bundle schema_version 3 (this release reads 1, 2")
    assert graph_problems(1, {FULL_GRAPH: full, "tiny_head": {"file": "x.onnx"}}) == [
        "unknown graph 'tiny_head'"
    ]
    partial = {**full, "outputs": {"pathology_probs": []}}
    assert graph_problems(1, {FULL_GRAPH: partial})[0].startswith("graph 'image_model' must list outputs")


def test_graph_variants_are_chosen_by_precision() -> None:
    entry = {"file": "a.onnx", "precision": "fp16", "variants": {"int8": {"file": "a.int8.onnx"}}}
    assert graph_file(entry, None) == "a.onnx" and graph_file(entry, "fp16") == "a.onnx"
    assert graph_file(entry, "int8") == "a.int8.onnx"
    with pytest.raises(GraphContractError, match="no fp32 variant"):
        graph_file(entry, "fp32")


def test_a_schema_1_bundle_still_serves_every_endpoint(tmp_path: Path) -> None:
    """Bundles exported before the split load, and every request runs their single graph."""
    old = load_bundle(build_tiny_bundle(tmp_path, schema_version=1))
    assert old.graph_names == (FULL_GRAPH,)
    runner = OrtImageModel(old, device="cpu", intra_op_threads=1)
    out = runner.run(
        np.zeros((1, 3, 64, 64), np.float32),
        old.pathology_queries,
        old.anatomy_queries,
        outputs=ENDPOINT_OUTPUTS["classify"],
    )
    assert out.segmentation_logits is not None  # the only graph computes everything


def test_an_unknown_schema_is_refused_with_the_versions_read(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    (root / "metadata.json").write_text(json.dumps({**meta, "schema_version": 3}))
    with pytest.raises(BundleError, match=r"schema_version 3 \(this release reads 1, 2"):
        load_bundle(root)


def test_classify_runs_only_the_classification_graph(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    runner = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    assert runner.graphs == (FULL_GRAPH, CLASSIFY_GRAPH)
    images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    cheap = runner.run(images, bundle.pathology_queries, bundle.anatomy_queries, ENDPOINT_OUTPUTS["classify"])
    full = runner.run(images, bundle.pathology_queries, bundle.anatomy_queries, ENDPOINT_OUTPUTS["segment"])
    assert cheap.pathology_maps is None and cheap.segmentation_logits is None and cheap.anatomy_probs is None
    np.testing.assert_allclose(cheap.pathology_probs, full.pathology_probs, atol=1e-6)


class RecordingRunner(HookedRunner):
    """Records which outputs each batch asked for."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle)
        self.asked: list[frozenset[str]] = []

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        self.asked.append(outputs)


async def test_endpoints_ask_the_batcher_for_their_outputs_and_agree(
    make_app: Callable[..., FastAPI],
) -> None:
    """/classify asks for probabilities only; /ground for maps; both return the same scores."""
    runners: list[RecordingRunner] = []

    def factory(bundle: Bundle, settings: Settings) -> RecordingRunner:
        runners.append(RecordingRunner(bundle))
        return runners[-1]

    headers = {"Content-Type": "image/png"}
    async with running_app(make_app(runner_factory=factory)) as client:
        runners[0].asked.clear()  # warm-up
        classified = await client.post(
            "/classify?findings=effusion,pneumonia", content=png_bytes(), headers=headers
        )
        grounded = await client.post(
            "/ground?findings=effusion,pneumonia", content=png_bytes(), headers=headers
        )
    assert classified.status_code == 200 and grounded.status_code == 200
    assert runners[0].asked == [ENDPOINT_OUTPUTS["classify"], ENDPOINT_OUTPUTS["ground"]]
    scores = [[f["score"] for f in r.json()["findings"]] for r in (classified, grounded)]
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)


def _fp16_bundle(root: Path) -> Path:
    """The tiny bundle with fp16-stored graphs, as `medslip-export --fp16` writes them."""
    bundle = build_tiny_bundle(root)
    meta = json.loads((bundle / "metadata.json").read_text())
    for entry in meta["graphs"].values():
        path = bundle / entry["file"]
        onnx.save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), str(path))
        entry["precision"] = "fp16"
    meta["files"] = {}
    (bundle / "metadata.json").write_text(json.dumps(meta))
    return bundle


def test_fp16_weights_compute_in_fp32_on_the_cpu(tmp_path: Path) -> None:
    bundle = load_bundle(_fp16_bundle(tmp_path), verify=False)
    assert is_fp16(bundle.graph_path)
    upcast = onnx.load_from_string(fp32_graph_bytes(bundle.graph_path))
    assert all(t.data_type != TensorProto.FLOAT16 for t in upcast.graph.initializer)
    auto = OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="auto")
    stored = OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="stored")
    assert auto.precisions[FULL_GRAPH] == "fp32 (fp16 weights)" and stored.precisions[FULL_GRAPH] == "fp16"
    images = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    a = auto.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    b = stored.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    np.testing.assert_allclose(a.pathology_probs, b.pathology_probs, atol=5e-3)
    assert ort.InferenceSession(fp32_graph_bytes(bundle.graph_path), providers=[CPU]).get_inputs()[
        0
    ].type == ("tensor(float)")


def test_int8_without_an_int8_graph_is_refused_at_start_up(tiny_bundle: Path) -> None:
    with pytest.raises(RuntimeError, match=r"bundle tiny-cxr 0\.0\.1 has no int8 graph"):
        OrtImageModel(load_bundle(tiny_bundle), device="cpu", intra_op_threads=1, precision="int8")


def test_an_int8_variant_is_loaded_for_its_graph_only(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    (root / "classify_model.int8.onnx").write_bytes((root / "classify_model.onnx").read_bytes())
    meta["graphs"][CLASSIFY_GRAPH]["variants"] = {
        "int8": {"file": "classify_model.int8.onnx", "precision": "int8"}
    }
    (root / "metadata.json").write_text(json.dumps(meta))
    runner = OrtImageModel(
        load_bundle(root, verify=False), device="cpu", intra_op_threads=1, precision="int8"
    )
    assert runner.precisions == {FULL_GRAPH: "fp32", CLASSIFY_GRAPH: "int8"}
