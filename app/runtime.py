"""ONNX Runtime sessions for the image model: one per bundle graph, provider choice, thread settings and
bucket warm-up.

Why one session per graph: ONNX Runtime computes every node of a graph whatever outputs are fetched, so
a batch runs the cheapest graph that has the outputs its requests read (`app/contract/graphs.py`).
Why a Protocol: the batcher and service only need `run()`; tests swap in doubles (slow, failing)
without touching ONNX Runtime.

On CUDA the sessions run the graphs as stored (fp16 compute) through IO binding (`app/io_binding.py`:
inputs from host numpy, outputs kept on the GPU and copied back once), and `warm_up` runs every batch
bucket through every graph before the service reports ready, so no request pays for cuDNN's algorithm
search. Host work overlaps the GPU: uploads are decoded and preprocessed in the decode process(es)
(`app/decode_pool.py`) while the single model thread waits on ONNX Runtime, which releases the GIL.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from app.contract.bundle import Bundle
from app.contract.graphs import (
    FULL_GRAPH,
    GRAPH_COST_ORDER,
    GRAPH_SIGNATURES,
    GROUND_GRAPH,
    choose_graph,
    has_precision,
    stored_precision,
)
from app.contract.vocabulary import OUTPUT_NAMES
from app.graph_precision import fp32_graph_bytes
from app.io_binding import output_device, run_bound

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class ModelOutputs:
    """Raw outputs of one batch (or, from `item`, of one image), names as in the contract's
    `image_model.onnx` table; None where the graph that ran does not compute the output (only
    `pathology_probs` is always there)."""

    pathology_probs: np.ndarray  # (B, Qp)
    pathology_maps: np.ndarray | None = None  # (B, Qp, G, G)
    anatomy_probs: np.ndarray | None = None  # (B, Qa)
    anatomy_maps: np.ndarray | None = None  # (B, Qa, G, G)
    segmentation_logits: np.ndarray | None = None  # (B, K, S, S)

    def item(self, index: int, pathology_rows: np.ndarray) -> ModelOutputs:
        """Image `index`'s outputs, batch axis removed (shapes without the leading B), keeping only the
        pathology query rows `pathology_rows` (the built-in book and that image's own free-text rows)."""

        def take(value: np.ndarray | None, *where: Any) -> np.ndarray | None:
            return None if value is None else value[where]

        return ModelOutputs(
            self.pathology_probs[index, pathology_rows],  # (Qp + Qc,)
            take(self.pathology_maps, index, pathology_rows),  # (Qp + Qc, G, G)
            take(self.anatomy_probs, index),  # (Qa,)
            take(self.anatomy_maps, index),  # (Qa, G, G)
            take(self.segmentation_logits, index),  # (K, S, S)
        )


class ImageModelRunner(Protocol):
    """Anything that maps a batch of normalised images and query books to model outputs."""

    @property
    def provider(self) -> str: ...

    def run(
        self,
        images: np.ndarray,
        pathology_queries: np.ndarray,
        anatomy_queries: np.ndarray,
        outputs: Iterable[str] = OUTPUT_NAMES,
    ) -> ModelOutputs:
        """images (B, 3, S, S); queries (Qp, T) and (Qa, T); `outputs`: those the caller reads (at least
        these are computed)."""
        ...


def select_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for `device` ("auto" | "cuda" | "cpu") given what onnxruntime offers."""
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise RuntimeError("MEDSLIP_DEVICE=cuda but onnxruntime offers no CUDAExecutionProvider")
    return [CPU]


#: ONNX Runtime session config key: whether idle intra-op threads spin-wait for the next run.
SPINNING_KEY = "session.intra_op.allow_spinning"


#: ONNX Runtime session config key: use the allocators registered in the process-wide environment.
ENV_ALLOCATORS_KEY = "session.use_env_allocators"
Arena = Literal["own", "shared", "none"]


def session_options(
    intra_op_threads: int, *, allow_spinning: bool = False, arena: Arena = "own"
) -> ort.SessionOptions:
    """Options of every graph's session. Spinning is off by default: each graph has its own thread pool,
    and while one graph runs the other's idle threads would spin on the same cores; with the service's
    two graphs called in turn, batch-1 calls took 1.5-2.2x as long with spinning on (docs/benchmarks.md,
    "Thread spinning"). `arena`: the session keeps its activations in an arena of its "own" at their
    peak, in the one arena "shared" by the process's sessions (`shared_cpu_arena` first), or in "none"
    (freed after each run); see `arena_of`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry(SPINNING_KEY, "1" if allow_spinning else "0")
    options.enable_cpu_mem_arena = arena != "none"
    if arena == "shared":
        options.add_session_config_entry(ENV_ALLOCATORS_KEY, "1")
    return options


@functools.cache
def shared_cpu_arena() -> None:
    """Register one CPU arena in ONNX Runtime's process-wide environment, once per process."""
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))


def arena_of(name: str, graph_names: Iterable[str]) -> Arena:
    """Where graph `name`'s session keeps its activations. Graphs are called one at a time, so they
    share one arena (its peak is the largest graph's, not the sum). Not the full graph of a bundle that
    also has `ground_model`: it then serves `/segment` only, and its two full-resolution decoders would
    raise that shared peak for every graph. With bundle 1.5.0 on 2 threads: 1.8 GB RSS with an arena per
    session, about 0.8 GB this way, for a `/segment` 10-30 % slower (docs/benchmarks.md, "Memory arena")."""
    return "none" if name == FULL_GRAPH and GROUND_GRAPH in set(graph_names) else "shared"


class GraphRunner:
    """What every runtime's runner shares: `run` picks the cheapest of its graphs that computes the
    requested outputs and feeds it the inputs that graph reads (`/classify`'s graph reads no anatomy
    queries); a subclass runs one named graph (`_run_graph`) and sets `_provider` and `_graph_names`."""

    _provider: str
    _graph_names: tuple[str, ...]

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def graphs(self) -> tuple[str, ...]:
        return self._graph_names

    def run(
        self,
        images: np.ndarray,
        pathology_queries: np.ndarray,
        anatomy_queries: np.ndarray,
        outputs: Iterable[str] = OUTPUT_NAMES,
    ) -> ModelOutputs:
        name = choose_graph(outputs, self._graph_names)
        feeds = {"image": images, "pathology_queries": pathology_queries, "anatomy_queries": anatomy_queries}
        return ModelOutputs(**self._run_graph(name, {key: feeds[key] for key in GRAPH_SIGNATURES[name][0]}))

    def _run_graph(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of graph `name` for `feeds` (its inputs, by name)."""
        raise NotImplementedError


class OrtImageModel(GraphRunner):
    """Every graph of the bundle in its own InferenceSession; `run` picks the cheapest one that computes
    the requested outputs."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        device: str = "auto",
        intra_op_threads: int = 0,
        precision: str = "stored",
        io_binding: bool | None = None,
        allow_spinning: bool = False,
    ) -> None:
        """`precision` (MEDSLIP_PRECISION): "stored" loads every graph as the bundle stores it; "fp32"
        computes in fp32 (a stored fp32 variant, else fp16 weights upcast in memory); "int8" loads the
        int8 variant of every graph that has one (at least one must); "auto" is "fp32" on the CPU and
        "stored" on CUDA, where fp16 is the fast type. `io_binding` (MEDSLIP_IO_BINDING): run through
        ONNX Runtime IO binding; None = on with CUDA only. `allow_spinning` (MEDSLIP_ORT_SPINNING): let
        idle intra-op threads spin-wait (see `session_options`)."""
        providers = select_providers(device, ort.get_available_providers())
        if precision == "auto":
            precision = "stored" if providers[0] == CUDA else "fp32"
        graphs = bundle.metadata.graphs
        if precision == "int8" and not any(has_precision(graphs[n], "int8") for n in bundle.graph_names):
            raise RuntimeError(
                f"MEDSLIP_PRECISION=int8: bundle {bundle.name} {bundle.version} has no int8 graph"
            )
        self._sessions: dict[str, ort.InferenceSession] = {}
        self.precisions: dict[str, str] = {}
        shared_cpu_arena()
        for name in bundle.graph_names:
            options = session_options(intra_op_threads, allow_spinning=allow_spinning,
                                      arena=arena_of(name, bundle.graph_names))
            path, source, self.precisions[name] = graph_source(bundle, name, precision)
            session = ort.InferenceSession(source, sess_options=options, providers=providers)
            expected_inputs, expected_outputs = GRAPH_SIGNATURES[name]
            inputs = {i.name for i in session.get_inputs()}
            missing = set(expected_inputs) - inputs
            if missing:
                raise RuntimeError(f"{path.name} lacks inputs {sorted(missing)}")
            absent = set(expected_outputs) - {o.name for o in session.get_outputs()}
            if absent:
                raise RuntimeError(f"{path.name} lacks outputs {sorted(absent)}")
            self._sessions[name] = session
        self._provider = next(iter(self._sessions.values())).get_providers()[0]
        self._graph_names = tuple(self._sessions)
        self.io_binding = self._provider == CUDA if io_binding is None else io_binding
        self._device_type = output_device(self._provider) if self.io_binding else ""
        logger.info("onnxruntime sessions ready",
                    extra={"provider": self._provider, "graphs": ",".join(self._sessions),
                           "io_binding": self.io_binding})

    def _run_graph(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = GRAPH_SIGNATURES[name][1]
        if self.io_binding:
            values = run_bound(self._sessions[name], feeds, names, self._device_type)
        else:
            values = self._sessions[name].run(list(names), feeds)
        return {key: np.asarray(v) for key, v in zip(names, values, strict=True)}


def graph_source(bundle: Bundle, name: str, precision: str) -> tuple[Path, str | bytes, str]:
    """(file, what the session loads, the precision it computes in) of graph `name` under `precision`
    ("stored", "fp32" or "int8"; "auto" already resolved): the variant when the bundle has one, else
    the stored file, upcast in memory when fp32 is asked of fp16 weights."""
    entry = bundle.metadata.graphs[name]
    if precision in ("fp32", "int8") and has_precision(entry, precision):
        path = bundle.graph_path_for(name, precision)
        return path, str(path), precision
    path, stored = bundle.graph_path_for(name), stored_precision(entry)
    if precision == "fp32" and stored == "fp16":
        return path, fp32_graph_bytes(path), "fp32 (fp16 weights)"
    return path, str(path), stored


def warm_up(runner: ImageModelRunner, bundle: Bundle, buckets: list[int]) -> dict[int, float]:
    """Run every bucket size through every graph (first runs allocate and, on CUDA, tune kernels), then
    time a second run of the full graph per bucket: the admission controller's pessimistic estimate."""
    timings: dict[int, float] = {}
    s = bundle.image_size
    for size in buckets:
        images = np.zeros((size, 3, s, s), dtype=np.float32)  # (B, 3, S, S)
        for graph in GRAPH_COST_ORDER:  # each graph's own outputs select that graph (or a bigger one)
            runner.run(images, bundle.pathology_queries, bundle.anatomy_queries,
                       outputs=GRAPH_SIGNATURES[graph][1])
        start = time.perf_counter()
        runner.run(images, bundle.pathology_queries, bundle.anatomy_queries)
        timings[size] = (time.perf_counter() - start) * 1000.0
    logger.info("warm-up done", extra={"buckets": str(buckets)})
    return timings
