"""Shared steps of every ONNX export: trace with the dynamo exporter, check, open with ONNX Runtime.

Kept in one place so the image model and the text encoder are exported, checked and compared the same
way (single-file graphs, full checker, CPU ORT sessions).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Opset of every exported graph; ORT >= 1.18 runs it.
OPSET = 18


def export_to_onnx(
    module: torch.nn.Module,
    example_args: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Mapping[str, Mapping[int, Any]],
) -> Path:
    """Export with `torch.onnx.export(dynamo=True)` as ONE file (no external data), then run the full
    ONNX checker, so a graph that the service cannot load never leaves this function."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            example_args,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dict(dynamic_shapes),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    check_onnx(path)
    logger.info("exported %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
    return path


def check_onnx(path: Path) -> None:
    """`onnx.checker.check_model(full_check=True)`: structure plus shape inference."""
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def cpu_session(source: Path | bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads (default one: deterministic and polite on shared
    build machines) and ONNX Runtime's full graph optimisation; `source` a file or a serialised graph."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """Outputs of one run, by output name."""
    names = [output.name for output in session.get_outputs()]
    values = session.run(names, dict(feeds))
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}


def max_abs_diff(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Largest elementwise |a - b|; shapes must agree (a shape mismatch is a failed parity, not 0)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
