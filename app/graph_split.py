"""Split a bundle graph where it starts reading the text queries: the image part (trunk and segmentation
heads, which read only the film) and the query part (the MeDSLIP decoders, which attend from the queries
to the image tokens).

Why: OpenVINO on a CPU with AMX computes a whole graph in bf16 or a whole graph in fp32. In bf16 the
image part runs about 3.7x faster than in fp32, but the query part moved one calibrated finding's AUROC
beyond the 0.005 bound (hernia, +0.0071 with only the query part in bf16, +0.0014 at most on any finding
with only the image part in bf16; docs/benchmarks.md, "OpenVINO"). Splitting lets the runtime
compile each part at its own precision.

The split is found from the graph alone, so it holds for any bundle of the contract: a tensor belongs to
the query part when it depends on a query input; the cut is every tensor that depends on the image, not
on the queries, and is read by the query part. Nodes that depend on no input at all (constants) go with
whichever part reads them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

__all__ = ["GraphSplit", "split_at_queries"]


@dataclass(frozen=True)
class GraphSplit:
    """The two parts of a graph and the tensors that pass between them."""

    image_part: onnx.ModelProto  # inputs: the image; outputs: `cut` + the image-only graph outputs
    query_part: onnx.ModelProto  # inputs: `cut` + the queries (+ graph inputs it reads directly)
    cut: tuple[str, ...]  # tensors computed by the image part and read by the query part
    image_outputs: tuple[str, ...]  # graph outputs the image part computes (e.g. segmentation_logits)
    query_outputs: tuple[str, ...]  # graph outputs the query part computes


def _dependants(graph: onnx.GraphProto, sources: Collection[str]) -> set[str]:
    """Every tensor computed (transitively) from `sources`; the nodes are in topological order."""
    reached = set(sources)
    for node in graph.node:
        if any(name in reached for name in node.input):
            reached.update(name for name in node.output if name)
    return reached


def _elem_types(graph: onnx.GraphProto) -> dict[str, int]:
    """Element type of every tensor, propagated node by node: what a split's inputs and outputs need where
    ONNX shape inference left a tensor without one (a reshape to a computed shape). Shape-like ops give
    int64, Cast its `to`, a Constant its value's type, every other op its first input's type."""
    types = {value.name: value.type.tensor_type.elem_type for value in (*graph.input, *graph.value_info)}
    types.update({tensor.name: tensor.data_type for tensor in graph.initializer})
    for node in graph.node:
        if node.op_type in ("Shape", "Size", "NonZero"):
            found: int | None = onnx.TensorProto.INT64
        elif node.op_type == "Cast":
            found = next(attr.i for attr in node.attribute if attr.name == "to")
        elif node.op_type == "Constant":
            found = next((attr.t.data_type for attr in node.attribute if attr.name == "value"), None)
        else:
            found = types.get(node.input[0]) if node.input else None
        for name in node.output:
            if name and found and name not in types:
                types[name] = found
    return types


def _typed(model: onnx.ModelProto, names: Collection[str]) -> onnx.ModelProto | None:
    """`model` after shape inference, with an element type recorded for every tensor of `names` (None when
    one cannot be found): the extractor refuses split points it has no type for."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    known = {value.name for value in (*graph.value_info, *graph.input, *graph.output)}
    missing = [name for name in names if name not in known]
    if missing:
        types = _elem_types(graph)
        if any(name not in types for name in missing):
            return None
        graph.value_info.extend(onnx.helper.make_tensor_value_info(name, types[name], None)
                                         for name in missing)
    return inferred


def split_at_queries(model: onnx.ModelProto, image_input: str, query_inputs: Collection[str]
                     ) -> GraphSplit | None:
    """The split of `model` between `image_input` and `query_inputs`, or None when one part would be empty
    (a graph that reads no query, or no image)."""
    graph = model.graph
    graph_inputs = {value.name for value in graph.input}
    queries = set(query_inputs) & graph_inputs
    from_queries = _dependants(graph, queries)
    from_image = _dependants(graph, {image_input})
    query_nodes = [node for node in graph.node if any(name in from_queries for name in node.input)]
    read_by_queries = {name for node in query_nodes for name in node.input}
    cut = sorted(name for name in read_by_queries
                 if name in from_image and name not in from_queries and name not in graph_inputs)
    direct = sorted(name for name in read_by_queries if name in graph_inputs and name not in queries)
    outputs = [value.name for value in graph.output]
    query_outputs = tuple(name for name in outputs if name in from_queries)
    image_outputs = tuple(name for name in outputs if name not in from_queries)
    if not queries or not cut or not query_outputs:
        return None
    typed = _typed(model, [*cut, *image_outputs])
    if typed is None:
        return None
    extractor = Extractor(typed)
    image_part = extractor.extract_model([image_input], [*cut, *image_outputs])
    query_part = extractor.extract_model([*cut, *direct, *sorted(queries)], list(query_outputs))
    return GraphSplit(image_part, query_part, tuple(cut), image_outputs, query_outputs)
