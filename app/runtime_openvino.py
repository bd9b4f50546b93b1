"""OpenVINO runtime for the image model on the CPU: the bundle's own ONNX graphs, with the layers that read
only the film in bf16 where the CPU has native bf16 (AMX or AVX512-BF16), else everything in fp32.

Why a second runtime: ONNX Runtime's CPU provider has no bf16 convolution or matrix kernels on x86, so on
a CPU with AMX it computes in fp32 at about the speed of PyTorch eager. OpenVINO reads the same ONNX files
and runs them in bf16 on AMX. Why "mixed" by default: with the whole graph in bf16 one calibrated
finding moved beyond the 0.005 AUROC bound, and the drift came from the layers that read the text
queries; with only the film-only layers (trunk, segmentation heads, the image side of the cross-attention)
in bf16 every finding stayed within 0.0023, at 1.9-4.5x ONNX Runtime's speed on a 2-core Xeon with AMX
(docs/benchmarks.md, "OpenVINO"). The split is `app.graph_split`; the drift tool
`training.export.runtime_drift`. The service runs it only when asked (`MEDSLIP_RUNTIME=openvino`).

Same contract as `OrtImageModel`: one compiled graph (or image part + query part) per bundle graph, `run`
picks the cheapest graph that computes the requested outputs. The graphs keep their dynamic batch and
query axes, so free-text queries (more pathology rows) need no recompilation by the caller. An infer
request is not thread-safe, so each is used under its own lock (the batcher calls from one thread;
warm-up from another).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from app.contract.bundle import Bundle
from app.contract.graphs import GRAPH_SIGNATURES, stored_precision
from app.graph_precision import fp32_model
from app.graph_split import split_at_queries
from app.runtime import GraphRunner

logger = logging.getLogger(__name__)

#: The OpenVINO device this runtime compiles for (the service uses ONNX Runtime on GPUs).
DEVICE = "CPU"
#: Compute precisions: "mixed" = bf16 for the layers that read only the film, fp32 for those that read the
#: text queries (`app.graph_split`); "bf16" and "fp32" = the whole graph in one precision.
PRECISIONS = ("mixed", "bf16", "fp32")
#: Our precision name -> OpenVINO's INFERENCE_PRECISION_HINT.
_HINTS = {"bf16": "bf16", "fp32": "f32"}
QUERY_INPUTS = ("pathology_queries", "anatomy_queries")


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
    """The compute precision asked for: "auto" is "mixed" where the CPU has native bf16, else fp32; bf16
    and mixed are refused where the CPU would only emulate bf16 (slower than fp32, and not measured)."""
    if precision == "auto":
        return "mixed" if native else "fp32"
    if precision not in PRECISIONS:
        raise RuntimeError(
            f"MEDSLIP_PRECISION={precision} is not an OpenVINO precision (auto, mixed, bf16, fp32); "
            "int8 and stored are ONNX Runtime's (MEDSLIP_RUNTIME=onnxruntime)"
        )
    if precision != "fp32" and not native:
        raise RuntimeError(f"MEDSLIP_PRECISION={precision} but this CPU has no native bf16 (AMX or "
                           "AVX512-BF16)")
    return precision


class _Part:
    """One compiled model with its infer request, the lock that request needs, and its ports by name."""

    def __init__(self, compiled: Any, inputs: Iterable[str], outputs: Iterable[str]) -> None:
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()
        self.inputs = {key: self._port(compiled.inputs, key) for key in inputs}
        self.outputs = {key: self._port(compiled.outputs, key) for key in outputs}

    @staticmethod
    def _port(ports: Iterable[Any], key: str) -> Any:
        for port in ports:
            if key in port.get_names():
                return port
        raise RuntimeError(f"graph lacks the port {key!r}")

    def run(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {port: np.ascontiguousarray(values[key]) for key, port in self.inputs.items()}
        with self.lock:
            # share_outputs=False: the request reuses its output buffers on the next call, so copy now.
            result = self.request.infer(inputs, share_inputs=True, share_outputs=False)
            return {key: np.asarray(result[port]) for key, port in self.outputs.items()}


class _Graph:
    """A bundle graph as one compiled model, or as its image part then its query part (mixed)."""

    def __init__(self, parts: list[_Part], outputs: Iterable[str], precision: str) -> None:
        self.parts = parts
        self.outputs = tuple(outputs)
        self.precision = precision  # what it computes in: mixed, bf16 or fp32

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = dict(feeds)
        for part in self.parts:  # the image part's outputs (the cut) feed the query part
            values.update(part.run(values))
        return {key: values[key] for key in self.outputs}


def _compile(core: Any, name: str, path: Path, precision: str, config: dict[str, Any]) -> _Graph:
    """Graph `name` at `precision`: whole in bf16 or fp32, or for mixed split at the queries. Where mixed
    finds no split point, a graph that reads queries compiles whole in fp32 (its query layers stay exact)
    and one that reads none in bf16."""
    inputs, outputs = GRAPH_SIGNATURES[name]
    if precision == "mixed":
        split = split_at_queries(fp32_model(path), "image", QUERY_INPUTS)
        if split is not None:
            parts = []
            for model, hint in ((split.image_part, "bf16"), (split.query_part, "fp32")):
                compiled = core.compile_model(core.read_model(model.SerializeToString()), DEVICE,
                                              {**config, "INFERENCE_PRECISION_HINT": _HINTS[hint]})
                parts.append(_Part(compiled, [value.name for value in model.graph.input],
                                   [value.name for value in model.graph.output]))
            return _Graph(parts, outputs, "mixed")
        precision = "fp32" if set(inputs) & set(QUERY_INPUTS) else "bf16"
        logger.warning("no split point at the queries; compiled whole", extra={"graph": name,
                                                                               "precision": precision})
    compiled = core.compile_model(core.read_model(str(path)), DEVICE,
                                  {**config, "INFERENCE_PRECISION_HINT": _HINTS[precision]})
    return _Graph([_Part(compiled, inputs, outputs)], outputs, precision)


class OpenVinoImageModel(GraphRunner):
    """Every graph of the bundle compiled by OpenVINO for the CPU; `run` picks the cheapest graph that
    computes the requested outputs (the same choice as `OrtImageModel`)."""

    def __init__(self, bundle: Bundle, *, threads: int = 0, precision: str = "auto") -> None:
        """`threads`: inference threads per graph (0 = OpenVINO's default, one per core); `precision`:
        auto (mixed where bf16 is native, else fp32), mixed, bf16 or fp32 (`PRECISIONS`). fp16-stored
        weights are read as fp32 (upcast in memory); int8 variants are ONNX Runtime's, not used here."""
        core = _core()
        self.precision = resolve_precision(precision, native_bf16(core))
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._graphs: dict[str, _Graph] = {}
        self.precisions: dict[str, str] = {}
        for name in bundle.graph_names:
            graph = _compile(core, name, bundle.graph_path_for(name), self.precision, config)
            self._graphs[name] = graph
            stored = stored_precision(bundle.metadata.graphs[name])
            self.precisions[name] = f"{graph.precision} ({stored} weights)"
        self._provider = f"OpenVINO-{DEVICE}-{self.precision}"
        self._graph_names = tuple(self._graphs)
        logger.info("openvino models ready",
                    extra={"provider": self.provider, "graphs": ",".join(self._graphs)})

    def _run_graph(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._graphs[name].run({key: value.astype(np.float32, copy=False)
                                       for key, value in feeds.items()})
