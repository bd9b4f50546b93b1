"""Which runtime runs the image model: ONNX Runtime (the default) or OpenVINO (`MEDSLIP_RUNTIME`).

Why OpenVINO is an explicit choice and not the default: on CPUs with AMX or AVX512-BF16 it runs the
graphs 2-4.5x faster with the film-only layers in bf16 (precision "mixed"), and on the shipped bundle's
validation films every calibrated finding stayed within the 0.005 AUROC bound that an int8 variant must
also meet (docs/benchmarks.md, "OpenVINO"). But the bundle's card reports ONNX Runtime's fp32 figures,
and that drift was measured on the shipped bundle only (`training.export.runtime_drift` measures another).
An operator turns it on; a choice that cannot be honoured is refused with a clear error rather than
silently replaced.
"""

from __future__ import annotations

from collections.abc import Callable

from app.contract.bundle import Bundle
from app.runtime import ImageModelRunner, OrtImageModel
from app.runtime_openvino import OpenVinoImageModel, openvino_available

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
#: Precisions OpenVINO serves; the others (stored, int8) are ONNX Runtime's.
OPENVINO_PRECISIONS = ("auto", "mixed", "bf16", "fp32")


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
    if precision in ("mixed", "bf16"):
        raise RuntimeError(f"MEDSLIP_PRECISION={precision} needs MEDSLIP_RUNTIME=openvino")
    return ONNXRUNTIME


def build_runner(
    bundle: Bundle,
    *,
    runtime: str = ONNXRUNTIME,
    device: str = "auto",
    precision: str = "auto",
    threads: int = 0,
    io_binding: bool | None = None,
    allow_spinning: bool = False,
) -> ImageModelRunner:
    """The image-model runner of `choose_runtime`'s choice. The service and the bundle evaluation both
    build theirs here, so an evaluated bundle runs on the very runner a service with the same settings
    would use. `threads`: intra-op threads per graph (0: the runtime's default)."""
    if choose_runtime(runtime, device, precision) == OPENVINO:
        return OpenVinoImageModel(bundle, threads=threads, precision=precision)
    return OrtImageModel(bundle, device=device, intra_op_threads=threads, precision=precision,
                         io_binding=io_binding, allow_spinning=allow_spinning)
