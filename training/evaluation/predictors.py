"""One inference interface over a PyTorch checkpoint or an exported ONNX bundle, so evaluation can
measure either the training artefact or exactly what users get (the bundle)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from app.contract.bundle import load_bundle
from app.contract.bundle_files import sha256_file
from app.contract.bundle_metadata import BundleMetadata
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import ANATOMY, OUTPUT_NAMES, PATHOLOGY
from app.runtime import ImageModelRunner
from app.runtime_choice import build_runner
from app.textquery import TextQueryEncoder
from training.export.graph import ImageModelGraph
from training.model import SEGMENTATION_STRUCTURES
from training.model.text_encoder import TextEncoder

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
    text_encoder: str | None = None  # the encoder free-text queries go through; None: entities only


class TextEncoderMissingError(RuntimeError):
    """Free text was asked of a model that ships no text encoder."""


class Predictor(Protocol):
    """Runs the contract's image graph on a preprocessed batch with the built-in query books, plus any
    extra pathology query rows (free text encoded by `encode_texts`), as the service does."""

    info: PredictorInfo

    def predict(self, images: NDArray[np.float32],
                extra_queries: NDArray[np.float32] | None = None) -> dict[str, NDArray[np.float32]]:
        """images (B, 3, S, S), extra_queries (E, T) -> the five outputs of `image_model.onnx`, by name;
        pathology outputs have Qp + E rows (the book, then the extra rows)."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Free texts -> (N, T) query embeddings from the model's own text encoder."""
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
            text_encoder=Path(str(graph.model.config.text_encoder)).name,
        )
        self._text_encoder: TextEncoder | None = None  # loaded on first use: entity-only runs skip it

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The encoder the model's query book was built with (its config's), on the CPU."""
        if self._text_encoder is None:
            self._text_encoder = TextEncoder.from_config(self.graph.model.config)
        return self._text_encoder.encode(list(texts)).numpy().astype(np.float32)  # (N, T)

    def predict(self, images: NDArray[np.float32],
                extra_queries: NDArray[np.float32] | None = None) -> dict[str, NDArray[np.float32]]:
        model = self.graph.model
        book = model.pathology_book  # (Qp, T)
        with torch.no_grad():
            if extra_queries is not None and len(extra_queries):
                extra = torch.from_numpy(extra_queries).to(book.device, book.dtype)  # (E, T)
                book = torch.cat([book, extra])  # (Qp + E, T)
            images_t = torch.from_numpy(images).to(self.device)  # (B, 3, S, S)
            outputs = self.graph(images_t, book, model.anatomy_book)
        return {name: tensor.cpu().numpy() for name, tensor in zip(OUTPUT_NAMES, outputs, strict=True)}


class OnnxPredictor:
    """An exported bundle on ONNX Runtime (CPU by default, `device="cuda"` for a GPU), verified against its
    sha256s before use, run by the runner the service builds (`app.runtime_choice.build_runner`, precision
    "auto": fp16 weights computed in fp32 on the CPU) so the figures are those of the computation users
    get."""

    def __init__(self, bundle_dir: Path, device: str = "cpu", runtime: str = "onnxruntime") -> None:
        """`runtime` "openvino": the service's OpenVINO runner instead (precision auto: mixed where the CPU
        has native bf16), to measure what `MEDSLIP_RUNTIME=openvino` serves."""
        BundleMetadata.verify(bundle_dir)
        bundle = load_bundle(bundle_dir, verify=False)
        self.runner: ImageModelRunner = build_runner(bundle, runtime=runtime, device=device, precision="auto")
        self._text_bundle = bundle.text_encoder
        self._text_encoder: TextQueryEncoder | None = None  # loaded on first use
        self.pathology_book = bundle.pathology_queries  # (Qp, T)
        self.anatomy_book = bundle.anatomy_queries  # (Qa, T)
        self.info = PredictorInfo(
            kind="bundle", name=f"{bundle.name}/{bundle.version}", sha256=bundle.sha256,
            preprocessing=bundle.preprocessing, pathology=bundle.pathology_names,
            anatomy=bundle.anatomy_names, structures=bundle.structures,
            text_encoder=None if bundle.text_encoder is None
            else f"{bundle.text_encoder.name}/{bundle.text_encoder.version}",
        )

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The bundle's text encoder through the service's own `TextQueryEncoder`."""
        if self._text_bundle is None:
            raise TextEncoderMissingError(f"bundle {self.info.name} ships no text encoder: entities only")
        if self._text_encoder is None:
            self._text_encoder = TextQueryEncoder(self._text_bundle)
        return self._text_encoder.encode(list(texts)).astype(np.float32)  # (N, T)

    def predict(self, images: NDArray[np.float32],
                extra_queries: NDArray[np.float32] | None = None) -> dict[str, NDArray[np.float32]]:
        """Extra rows follow the book, as the service appends a request's free-text findings."""
        book = self.pathology_book  # (Qp, T)
        if extra_queries is not None and len(extra_queries):
            book = np.concatenate([book, extra_queries.astype(np.float32)])  # (Qp + E, T)
        out = self.runner.run(images, book, self.anatomy_book)  # every output: image_model
        return {name: np.asarray(getattr(out, name)) for name in OUTPUT_NAMES}


class EnsemblePredictor:
    """Several predictors of one contract with every output averaged film by film (scores, maps and
    segmentation logits): what serving the mean of N models would score.

    Why: it measures how much of a recipe's error is seed-to-seed variance, the part that averaging
    removes, before anyone pays N forwards per film for it. Free-text queries go through the first
    member's encoder; members must share the preprocessing and the query and structure names."""

    def __init__(self, members: Sequence[Predictor]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        first = members[0].info
        for member in members[1:]:
            other = member.info
            if (other.preprocessing, other.pathology, other.anatomy, other.structures) != (
                    first.preprocessing, first.pathology, first.anatomy, first.structures):
                raise ValueError(f"{other.name} does not share {first.name}'s preprocessing and outputs")
        self.members = list(members)
        digest = hashlib.sha256("".join(m.info.sha256 for m in members).encode()).hexdigest()
        self.info = replace(first, kind="ensemble", name=" + ".join(m.info.name for m in members),
                            sha256=digest)

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.members[0].encode_texts(texts)

    def predict(self, images: NDArray[np.float32],
                extra_queries: NDArray[np.float32] | None = None) -> dict[str, NDArray[np.float32]]:
        outputs = [member.predict(images, extra_queries) for member in self.members]
        return {name: np.mean([out[name] for out in outputs], axis=0).astype(np.float32)
                for name in outputs[0]}
