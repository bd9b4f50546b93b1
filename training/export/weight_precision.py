"""Smaller graphs for distribution: fp16 weights (graph I/O stays float32) and dynamic int8 weights.

Used by the exporters (`medslip-export`, `medslip-export-text`). Not to be confused with the static
int8 variants calibrated on real films (`medslip-quantize-int8`, `training/export/int8_static.py`).

Both keep the graph's inputs and outputs float32, so the service code is the same for every precision;
the caller measures and records the drift against the fp32 graph.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import convert_float_to_float16

logger = logging.getLogger(__name__)


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder the main graph's nodes so every input is produced before it is used. The float16
    converter appends its input casts at the end, which the ONNX checker (rightly) rejects."""
    graph = model.graph
    available = {""} | {i.name for i in graph.input} | {i.name for i in graph.initializer}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input nothing produces")
        ready_ids = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in ready_ids]
        for node in ready:
            ordered.append(node)
            available.update(node.output)
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def convert_to_fp16(source: Path, target: Path) -> Path:
    """Weights and compute in float16, float32 graph I/O (casts inserted at the edges)."""
    model = onnx.load(str(source))
    converted = topologically_sorted(convert_float_to_float16(model, keep_io_types=True))
    onnx.save(converted, str(target))
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)
    logger.info("fp16 graph %s: %.1f MB", target.name, target.stat().st_size / 1e6)
    return target


def quantize_dynamic_int8(source: Path, target: Path) -> Path:
    """Per-channel int8 MatMul weights, activations quantised on the fly (no calibration data needed).
    Measured on all-MiniLM-L6-v2 it keeps only ~0.97 cosine to fp32, so callers must check the drift."""
    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul"],
    )
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)
    logger.info("int8 graph %s: %.1f MB", target.name, target.stat().st_size / 1e6)
    return target
