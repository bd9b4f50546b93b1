"""ONNX Runtime session for the image model: provider choice, thread settings and bucket warm-up.

Why a Protocol: the batcher and service only need `run()`; tests swap in doubles (slow, failing)
without touching ONNX Runtime.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnxruntime as ort

from app.bundle import Bundle

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class ModelOutputs:
    """Raw outputs of one batch, names as in the contract's `image_model.onnx` table."""

    pathology_probs: np.ndarray  # (B, Qp)
    pathology_maps: np.ndarray  # (B, Qp, G, G)
    anatomy_probs: np.ndarray  # (B, Qa)
    anatomy_maps: np.ndarray  # (B, Qa, G, G)
    segmentation_logits: np.ndarray  # (B, K, S, S)


class ImageModelRunner(Protocol):
    """Anything that maps a batch of normalised images and query books to model outputs."""

    @property
    def provider(self) -> str: ...

    def run(
        self, images: np.ndarray, pathology_queries: np.ndarray, anatomy_queries: np.ndarray
    ) -> ModelOutputs:
        """images (B, 3, S, S); queries (Qp, T) and (Qa, T)."""
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


class OrtImageModel:
    """The bundle's `image_model.onnx` in an InferenceSession."""

    OUTPUT_NAMES = (
        "pathology_probs",
        "pathology_maps",
        "anatomy_probs",
        "anatomy_maps",
        "segmentation_logits",
    )

    def __init__(self, bundle: Bundle, *, device: str = "auto", intra_op_threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        providers = select_providers(device, ort.get_available_providers())
        self._session = ort.InferenceSession(
            str(bundle.graph_path), sess_options=options, providers=providers
        )
        self._provider = self._session.get_providers()[0]
        names = {i.name for i in self._session.get_inputs()}
        missing = {"image", "pathology_queries", "anatomy_queries"} - names
        if missing:
            raise RuntimeError(f"image_model.onnx lacks inputs {sorted(missing)}")
        logger.info("onnxruntime session ready", extra={"provider": self._provider})

    @property
    def provider(self) -> str:
        return self._provider

    def run(
        self, images: np.ndarray, pathology_queries: np.ndarray, anatomy_queries: np.ndarray
    ) -> ModelOutputs:
        feeds = {"image": images, "pathology_queries": pathology_queries, "anatomy_queries": anatomy_queries}
        outputs = self._session.run(list(self.OUTPUT_NAMES), feeds)
        return ModelOutputs(*(np.asarray(o) for o in outputs))


def warm_up(runner: ImageModelRunner, bundle: Bundle, buckets: list[int]) -> dict[int, float]:
    """Run every bucket size once (first runs allocate and, on CUDA, tune kernels); returns ms per bucket."""
    timings: dict[int, float] = {}
    s = bundle.image_size
    for size in buckets:
        images = np.zeros((size, 3, s, s), dtype=np.float32)  # (B, 3, S, S)
        start = time.perf_counter()
        runner.run(images, bundle.pathology_queries, bundle.anatomy_queries)
        timings[size] = (time.perf_counter() - start) * 1000.0
    logger.info("warm-up done", extra={"buckets": str(buckets)})
    return timings
