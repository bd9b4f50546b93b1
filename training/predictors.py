"""One inference interface over a PyTorch checkpoint or an exported ONNX bundle, so evaluation can
measure either the training artefact or exactly what users get (the bundle)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from app.bundle import load_bundle
from app.imaging.preprocessing import PreprocessingSpec
from app.runtime import OrtImageModel
from training.bundle import sha256_file, verify_bundle
from training.export_graph import OUTPUT_NAMES, ImageModelGraph
from training.model import SEGMENTATION_STRUCTURES
from training.model.entities import ANATOMY, PATHOLOGY

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorInfo:
    """What was evaluated and how its inputs must be prepared."""

    kind: str  # "checkpoint" | "bundle"
    name: str  # file or folder name (never a full path: reports get shared)
    sha256: str  # of the checkpoint file, or of image_model.onnx
    preprocessing: PreprocessingSpec
    pathology: tuple[str, ...]  # names in query order
    anatomy: tuple[str, ...]
    structures: tuple[str, ...]  # segmentation channels; empty without segmentation


class Predictor(Protocol):
    """Runs the contract's image graph on a preprocessed batch with the built-in query books."""

    info: PredictorInfo

    def predict(self, images: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        """images (B, 3, S, S) -> the five outputs of `image_model.onnx`, by name."""
        ...


class TorchPredictor:
    """The PyTorch model, wrapped in the same `ImageModelGraph` the export traces."""

    def __init__(self, graph: ImageModelGraph, checkpoint: Path, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.graph = graph.eval().to(self.device)
        structures = SEGMENTATION_STRUCTURES if graph.num_structures else ()
        self.info = PredictorInfo(
            kind="checkpoint", name=checkpoint.name, sha256=sha256_file(checkpoint),
            preprocessing=PreprocessingSpec.trained(graph.model.config.image_size),
            pathology=PATHOLOGY, anatomy=ANATOMY, structures=tuple(structures),
        )

    def predict(self, images: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        model = self.graph.model
        with torch.no_grad():
            images_t = torch.from_numpy(images).to(self.device)  # (B, 3, S, S)
            outputs = self.graph(images_t, model.pathology_book, model.anatomy_book)
        return {name: tensor.cpu().numpy() for name, tensor in zip(OUTPUT_NAMES, outputs, strict=True)}


class OnnxPredictor:
    """An exported bundle on ONNX Runtime (CPU by default, `device="cuda"` for a GPU), verified against its
    sha256s before use, run by the service's own runner (`app.runtime.OrtImageModel`, precision "auto":
    fp16 weights computed in fp32 on the CPU) so the figures are those of the computation users get."""

    def __init__(self, bundle_dir: Path, device: str = "cpu") -> None:
        metadata: dict[str, Any] = verify_bundle(bundle_dir)
        graph_file = metadata["graphs"]["image_model"]["file"]
        self.runner = OrtImageModel(load_bundle(bundle_dir, verify=False), device=device, precision="auto")
        books = {stream: np.load(bundle_dir / metadata[stream]["embeddings_file"]).astype(np.float32)
                 for stream in ("pathology", "anatomy")}
        self.pathology_book, self.anatomy_book = books["pathology"], books["anatomy"]  # (Qp, T), (Qa, T)
        self.info = PredictorInfo(
            kind="bundle", name=f"{metadata['name']}/{metadata['version']}",
            sha256=metadata["files"][graph_file],
            preprocessing=PreprocessingSpec.from_dict(metadata["preprocessing"]),
            pathology=tuple(metadata["pathology"]["names"]), anatomy=tuple(metadata["anatomy"]["names"]),
            structures=tuple(metadata["segmentation"]["structures"]),
        )

    def predict(self, images: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        out = self.runner.run(images, self.pathology_book, self.anatomy_book)  # every output: image_model
        return {name: np.asarray(getattr(out, name)) for name in OUTPUT_NAMES}
