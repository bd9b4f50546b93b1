"""OpenVINO runtime for the image model on the CPU: the bundle's own ONNX graphs, computed in bf16 where
the CPU has native bf16 (AMX or AVX512-BF16), else in fp32.

Why a second runtime: ONNX Runtime's CPU provider has no bf16 convolution or matrix kernels on x86, so on
a CPU with AMX it computes in fp32 at about the speed of PyTorch eager. OpenVINO reads the same ONNX files
and runs them in bf16 on AMX: on a 2-core Xeon with AMX, in one interleaved run, the graphs ran 2.1-3.4x
faster than on ONNX Runtime at batch 1 and 3.9-5.2x at batch 8 (docs/benchmarks.md, "OpenVINO bf16"). Its
drift against fp32 is measured per bundle (`training.export.runtime_drift`) with the int8 variants' bounds;
the service runs it only when asked (`MEDSLIP_RUNTIME=openvino`, `app.runtime_choice`).

Same contract as `OrtImageModel`: one compiled model per bundle graph, `run` picks the cheapest graph that
computes the requested outputs. The graphs keep their dynamic batch and query axes, so free-text queries
(more pathology rows) need no recompilation by the caller. An infer request is not thread-safe, so each
graph's request is used under its own lock (the batcher calls from one thread; warm-up from another).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from app.contract.bundle import Bundle
from app.contract.graphs import GRAPH_SIGNATURES, choose_graph, stored_precision
from app.contract.vocabulary import OUTPUT_NAMES
from app.runtime import ModelOutputs, graph_feeds

logger = logging.getLogger(__name__)

#: The OpenVINO device this runtime compiles for (the service uses ONNX Runtime on GPUs).
DEVICE = "CPU"
OpenVinoPrecision = Literal["auto", "bf16", "fp32"]
#: Our precision name -> OpenVINO's INFERENCE_PRECISION_HINT.
_HINTS = {"bf16": "bf16", "fp32": "f32"}


def openvino_available() -> bool:
    """True when the `openvino` package can be imported (it is an optional dependency of the service)."""
    try:
        import openvino  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _core() -> Any:
    import openvino  # noqa: PLC0415  (optional dependency: imported only when this runtime is chosen)

    return openvino.Core()


def native_bf16(core: Any | None = None) -> bool:
    """True when OpenVINO's CPU plugin computes bf16 natively here (AMX or AVX512-BF16); elsewhere bf16
    would be emulated, slower than fp32."""
    core = core if core is not None else _core()
    return "BF16" in core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")


def resolve_precision(precision: str, native: bool) -> str:
    """The compute precision asked for: "auto" is bf16 where native, else fp32; "bf16" is refused where
    the CPU would only emulate it (slower than fp32, and not what was measured)."""
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        raise RuntimeError("MEDSLIP_PRECISION=bf16 but this CPU has no native bf16 (AMX or AVX512-BF16)")
    if precision not in _HINTS:
        raise RuntimeError(
            f"MEDSLIP_PRECISION={precision} is not an OpenVINO precision (auto, bf16, fp32); "
            "int8 and stored are ONNX Runtime's (MEDSLIP_RUNTIME=onnxruntime)"
        )
    return precision


class _Graph:
    """One compiled graph with its infer request, the lock that request needs, and its port names."""

    def __init__(self, compiled: Any, name: str) -> None:
        self.name = name
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()
        inputs, outputs = GRAPH_SIGNATURES[name]
        self.inputs = {key: self._port(compiled.inputs, key) for key in inputs}
        self.outputs = {key: self._port(compiled.outputs, key) for key in outputs}

    @staticmethod
    def _port(ports: Iterable[Any], key: str) -> Any:
        for port in ports:
            if key in port.get_names():
                return port
        raise RuntimeError(f"graph lacks the port {key!r}")

    def run(self, feeds: dict[str, np.ndarray], wanted: Iterable[str]) -> dict[str, np.ndarray]:
        inputs = {self.inputs[key]: np.ascontiguousarray(value) for key, value in feeds.items()}
        with self.lock:
            # share_outputs=False: the request reuses its output buffers on the next call, so copy now.
            result = self.request.infer(inputs, share_inputs=True, share_outputs=False)
            return {key: np.asarray(result[self.outputs[key]]) for key in wanted}


class OpenVinoImageModel:
    """Every graph of the bundle compiled by OpenVINO for the CPU; `run` picks the cheapest graph that
    computes the requested outputs (the same choice as `OrtImageModel`)."""

    def __init__(self, bundle: Bundle, *, threads: int = 0, precision: str = "auto") -> None:
        """`threads`: inference threads per graph (0 = OpenVINO's default, one per core); `precision`:
        auto (bf16 where native, else fp32), bf16 or fp32 compute. Graph files are read as stored (fp16
        weights are converted on load); int8 variants are ONNX Runtime's and are not used here."""
        core = _core()
        self.precision = resolve_precision(precision, native_bf16(core))
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._graphs: dict[str, _Graph] = {}
        self.precisions: dict[str, str] = {}
        for name in bundle.graph_names:
            path = bundle.graph_path_for(name)
            compiled = core.compile_model(core.read_model(str(path)), DEVICE, config)
            self._graphs[name] = _Graph(compiled, name)
            stored = stored_precision(bundle.metadata.graphs[name])
            self.precisions[name] = f"{self.precision} ({stored} weights)"
        logger.info("openvino models ready",
                    extra={"provider": self.provider, "graphs": ",".join(self._graphs)})

    @property
    def provider(self) -> str:
        return f"OpenVINO-{DEVICE}-{self.precision}"

    @property
    def graphs(self) -> tuple[str, ...]:
        return tuple(self._graphs)

    def run(
        self,
        images: np.ndarray,
        pathology_queries: np.ndarray,
        anatomy_queries: np.ndarray,
        outputs: Iterable[str] = OUTPUT_NAMES,
    ) -> ModelOutputs:
        name = choose_graph(outputs, self._graphs)
        feeds = graph_feeds(name, images, pathology_queries, anatomy_queries)
        graph = self._graphs[name]
        values = graph.run({key: value.astype(np.float32, copy=False) for key, value in feeds.items()},
                           graph.outputs)
        return ModelOutputs(**values)
