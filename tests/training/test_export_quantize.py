"""fp16 / int8 graph conversion: valid graphs, float32 I/O kept, drift measured and recorded."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.contract.bundle import load_bundle
from app.contract.bundle_files import bundle_problems
from app.runtime import OrtImageModel
from training.export import export_bundle
from training.onnx_tools import cpu_session, run_session
from training.quantize import convert_to_fp16, topologically_sorted
from training.quantize_measure import decide, measure_drift
from training.quantize_recipes import RECIPES, float_nodes
from training.quantize_static import GraphVariant, build_variants, write_variant_bundle

from .tiny_models import IMAGE_SIZE, write_tiny_checkpoints


def _matmul_graph(path: Path) -> Path:
    weight = helper.make_tensor("w", TensorProto.FLOAT, (4, 3), np.arange(12, dtype=np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 3])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_topological_sort_repairs_nodes_listed_before_their_inputs(tmp_path: Path) -> None:
    model = onnx.load(str(_matmul_graph(tmp_path / "g.onnx")))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    onnx.checker.check_model(topologically_sorted(model), full_check=True)


def test_fp16_graph_keeps_float32_io_and_close_values(tmp_path: Path) -> None:
    source = _matmul_graph(tmp_path / "g.onnx")
    target = convert_to_fp16(source, tmp_path / "g16.onnx")
    x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
    reference = run_session(cpu_session(source), {"x": x})["z"]
    half = run_session(cpu_session(target), {"x": x})["z"]
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, reference, rtol=1e-3)


def _figures(delta: float | None, n_pos: int = 1) -> dict[str, Any]:
    int8 = None if delta is None else 0.8 + delta
    return {"n": 4, "n_pos": n_pos, "fp32": 0.8, "int8": int8, "delta": delta}


def test_drift_figures_on_a_hand_made_case() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], dtype=np.float32)  # (N, Qp)
    maps = np.zeros((4, 2, 2, 2), dtype=np.float32)
    maps[:, :, 0, 0] = 1.0
    reference = {"pathology_probs": probs, "pathology_maps": maps}
    swapped = maps.copy()
    swapped[:, 1] = 0.0
    swapped[:, 1, 1, 1] = 1.0  # the second query's map moves to an orthogonal pixel: cosine 0
    # finding "normal" (column 0): fp32 ranks the positives (rows 0, 2) first; int8 ranks one negative first.
    int8_probs = probs.copy()
    int8_probs[1, 0] = 0.8
    quantised = {"pathology_probs": int8_probs, "pathology_maps": swapped}
    labels = [{"normal": 1}, {"normal": 0}, {"normal": 1}, {}]
    drift = measure_drift(reference, quantised, labels, ["normal", "pneumonia"], ["normal", "pneumonia"])
    assert drift["auroc"]["normal"] == {"n": 3, "n_pos": 2, "fp32": 1.0, "int8": 0.5, "delta": -0.5}
    assert drift["auroc"]["pneumonia"] == {"n": 0, "n_pos": 0, "fp32": None, "int8": None, "delta": None}
    assert drift["max_abs_auroc_delta"] is None  # a finding it could not measure
    assert drift["pathology_probs_max_abs_diff"] == pytest.approx(0.6)
    assert drift["pathology_maps_mean_cosine"] == pytest.approx(0.5)
    assert drift["n_images"] == 4
    measured = measure_drift(reference, quantised, labels, ["normal", "pneumonia"], ["normal"])
    assert measured["max_abs_auroc_delta"] == pytest.approx(0.5)


def test_decision_rule_bounds_every_calibrated_finding_and_the_maps() -> None:
    within = {"auroc": {"a": _figures(0.005), "b": _figures(-0.004)}, "pathology_maps_mean_cosine": 0.99}
    assert decide(within) == []
    over = {"auroc": {"a": _figures(0.001), "b": _figures(-0.006)}}
    assert [reason.split(":")[0] for reason in decide(over)] == ["b"]
    assert decide({"auroc": {"a": _figures(None, n_pos=0)}})[0].startswith("a: AUROC drift not measurable")
    assert decide({"auroc": {}, "pathology_maps_mean_cosine": 0.9})[0].startswith("heat-map mean cosine")


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
    assert bundle_problems(target) == []
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
    drifted = [GraphVariant(v.graph, v.path, {**v.drift, "auroc": {"normal": _figures(0.02)}},
                            decide({"auroc": {"normal": _figures(0.02)}}), v.float_nodes, v.timing)
               for v in measured]
    assert all(v.reasons for v in drifted)
    assert write_variant_bundle(source, "2-int8", drifted, RECIPES["no-attention-minmax"], {}) is None
    assert not (source.parent / "2-int8").exists()
    assert not any(path.name.startswith(("2", ".2")) for path in source.parent.iterdir())
    forced = write_variant_bundle(source, "3-int8", drifted, RECIPES["no-attention-minmax"], {}, force=True)
    assert forced is not None and bundle_problems(forced) == []
    int8 = json.loads((forced / "metadata.json").read_text())["graphs"]["classify_model"]["variants"]["int8"]
    assert int8["passed"] is False and int8["failed_bounds"][0].startswith("normal: |AUROC drift| 0.0200")


def test_recipes_keep_softmax_attention_products_and_output_heads_float(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    weights = [helper.make_tensor(n, TensorProto.FLOAT, (4, 4), np.eye(4, dtype=np.float32).ravel().tolist())
               for n in ("wq", "wk")]
    head = helper.make_tensor("wh", TensorProto.FLOAT, (4, 3), np.ones(12, dtype=np.float32).tolist())
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="query"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="key"),
        helper.make_node("Transpose", ["k"], ["kt"], name="t"),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["attn"], name="softmax"),
        helper.make_node("MatMul", ["attn", "q"], ["ctx"], name="context"),
        helper.make_node("MatMul", ["ctx", "wh"], ["logits"], name="head"),
        helper.make_node("Sigmoid", ["logits"], ["y"], name="sigmoid"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [*weights, head]))
    assert float_nodes(model, RECIPES["all-minmax"]) == []
    assert float_nodes(model, RECIPES["no-attention-minmax"]) == ["scores", "context", "head"]
    assert float_nodes(model, RECIPES["conv-minmax"]) == []
    assert float_nodes(model, RECIPES["no-attention-minmax-stem-float"]) == [
        "query", "key", "scores", "context", "head"]
