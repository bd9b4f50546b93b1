"""Run an fp16-stored graph in fp32 on the CPU: the weights are upcast in memory when the session is made.

Why: bundles store fp16 weights (half the download, and the GPU's compute type), but ONNX Runtime's CPU
kernels for float16 are few and slow; in the interleaved benchmark on a 2-core AVX-512 CPU the full
graph ran 1.04x faster upcast, at no cost in accuracy (docs/benchmarks.md, "Precision on the CPU").
The upcast graph computes exactly what the fp16 weights say, in fp32 arithmetic; nothing is written to
disk and the bundle's checksums still hold.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

logger = logging.getLogger(__name__)

_TYPE_ATTRIBUTES = ("to", "dtype", "output_dtype")


def _upcast_tensor(tensor: TensorProto) -> TensorProto:
    if tensor.data_type != TensorProto.FLOAT16:
        return tensor
    array = numpy_helper.to_array(tensor).astype(np.float32)
    return numpy_helper.from_array(array, tensor.name)


def _upcast_graph(graph: onnx.GraphProto) -> int:
    """Upcast one graph (and its subgraphs) in place; returns how many fp16 tensors were converted."""
    count = 0
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT16:
            graph.initializer[index].CopyFrom(_upcast_tensor(tensor))
            count += 1
    for info in (*graph.input, *graph.output, *graph.value_info):
        if info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _TYPE_ATTRIBUTES and attribute.i == TensorProto.FLOAT16:
                attribute.i = TensorProto.FLOAT
            if attribute.HasField("t") and attribute.t.data_type == TensorProto.FLOAT16:
                attribute.t.CopyFrom(_upcast_tensor(attribute.t))
                count += 1
            for sub in (*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])):
                count += _upcast_graph(sub)
    return count


def is_fp16(path: Path) -> bool:
    """True when the graph stores any float16 initializer (read without loading the weights twice)."""
    model = onnx.load(str(path), load_external_data=False)
    return any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)


def fp32_model(path: Path) -> onnx.ModelProto:
    """The graph at `path` with every float16 tensor and type made float32, in memory."""
    model = onnx.load(str(path))
    count = _upcast_graph(model.graph)
    logger.info("fp16 graph upcast for fp32 compute", extra={"graph": path.name, "tensors": count})
    return model


def fp32_graph_bytes(path: Path) -> bytes:
    """`fp32_model`, serialised for ORT."""
    return fp32_model(path).SerializeToString()
