"""Which runtime runs the image model: ONNX Runtime (the default) or OpenVINO (`MEDSLIP_RUNTIME`).

Why OpenVINO is an explicit choice and not the default: it computes the graphs in bf16 on CPUs with AMX or
AVX512-BF16, several times faster than ONNX Runtime's fp32 there, but on the shipped bundle's validation
films one calibrated finding (hernia, 4 positives) moved by more than the 0.005 AUROC bound that an int8
variant must also meet (docs/benchmarks.md, "OpenVINO bf16"). An operator who accepts the measured drift
turns it on; a choice that cannot be honoured is refused with a clear error rather than silently replaced.
"""

from __future__ import annotations

from collections.abc import Callable

from app.runtime_openvino import openvino_available

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
#: Precisions OpenVINO serves; the others (stored, int8) are ONNX Runtime's.
OPENVINO_PRECISIONS = ("auto", "bf16", "fp32")


def choose_runtime(
    runtime: str, device: str, precision: str, *, available: Callable[[], bool] = openvino_available
) -> str:
    """"onnxruntime" or "openvino" for the settings `runtime`, `device` and `precision`, or a RuntimeError
    saying why that combination cannot run. `available` probes for the openvino package (a parameter so
    the rule is tested on any host)."""
    if runtime == OPENVINO:
        if device == "cuda":
            raise RuntimeError("MEDSLIP_RUNTIME=openvino runs on the CPU; MEDSLIP_DEVICE=cuda needs "
                               "onnxruntime")
        if precision not in OPENVINO_PRECISIONS:
            raise RuntimeError(f"MEDSLIP_PRECISION={precision} is ONNX Runtime's; use "
                               "MEDSLIP_RUNTIME=onnxruntime")
        if not available():
            raise RuntimeError("MEDSLIP_RUNTIME=openvino but the openvino package is not installed")
        return OPENVINO
    if precision == "bf16":
        raise RuntimeError("MEDSLIP_PRECISION=bf16 needs MEDSLIP_RUNTIME=openvino")
    return ONNXRUNTIME
