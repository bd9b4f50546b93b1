"""Static int8 recipes: which nodes each keeps in float."""

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from training.export.int8_recipes import RECIPES, float_nodes


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
