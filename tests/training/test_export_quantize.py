"""fp16 / int8 graph conversion: valid graphs, float32 I/O kept, drift measured and recorded."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from training.bundle import bundle_problems
from training.export import export_bundle
from training.onnx_tools import cpu_session, run_session
from training.quantize import convert_to_fp16, topologically_sorted
from training.quantize_static import measure_drift, quantize_bundle

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


def test_drift_reports_auroc_of_both_graphs_per_labelled_finding() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], dtype=np.float32)  # (N, Qp)
    maps = np.ones((3, 2, 2, 2), dtype=np.float32)
    reference = {
        "pathology_probs": probs,
        "anatomy_probs": probs,
        "pathology_maps": maps,
        "anatomy_maps": maps,
    }
    quantised = dict(reference, pathology_probs=probs[:, ::-1].copy())
    drift = measure_drift(reference, quantised, [{"normal": 1}, {"normal": 0}, {}], ["normal", "pneumonia"])
    assert drift["auroc"]["normal"] == {"n": 2, "fp32": 1.0, "int8": 0.0}
    assert drift["pathology_probs_max_abs_diff"] == pytest.approx(0.8)
    assert drift["pathology_maps_mean_cosine"] == pytest.approx(1.0)


@pytest.mark.slow
def test_static_int8_bundle_is_smaller_verified_and_records_drift(tmp_path: Path) -> None:
    checkpoint, _ = write_tiny_checkpoints(tmp_path)
    fp32 = export_bundle(
        checkpoint=checkpoint, seg_checkpoint=None, name="tiny", version="1", store=tmp_path / "store"
    )
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32) for _ in range(6)]
    int8 = quantize_bundle(fp32, "1-int8", images[:4], images[4:], [{"normal": 1}, {"normal": 0}])
    assert bundle_problems(int8) == []
    assert (int8 / "image_model.onnx").stat().st_size < (fp32 / "image_model.onnx").stat().st_size / 2
    graph = json.loads((int8 / "metadata.json").read_text())["graphs"]["image_model"]
    assert graph["precision"] == "int8-qdq"
    drift = graph["quantization"]["drift_vs_fp32"]
    assert drift["n_images"] == 2 and 0.0 <= drift["pathology_probs_max_abs_diff"] < 0.5
    assert drift["anatomy_maps_mean_cosine"] > 0.9
