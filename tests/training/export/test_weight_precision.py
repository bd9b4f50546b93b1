"""fp16 weights: a valid graph (nodes re-sorted), float32 I/O kept, values close to fp32."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from training.export.onnx_tools import cpu_session, run_session
from training.export.weight_precision import convert_to_fp16, topologically_sorted


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
