"""Load and verify a model bundle for serving (docs/contracts.md, "Bundle"), and find the default one in
model_store/. The metadata itself is the typed `BundleMetadata` (app/contract/bundle_metadata.py).

Why verify: a half-copied or edited bundle must fail loudly at start-up, not serve wrong scores.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract.bundle_files import BundleError, file_problems, sha256_file
from app.contract.bundle_metadata import (
    TEXT_GRAPH_FILE,
    TOKENIZER_FILE,
    BundleMetadata,
    QueryBook,
    TextEncoderMetadata,
    TextEncoderRef,
)
from app.contract.graphs import FULL_GRAPH, graph_file
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import SEGMENTATION_STRUCTURES

__all__ = [
    "Bundle",
    "BundleError",
    "TextEncoderBundle",
    "load_bundle",
    "resolve_default_bundle",
    "sha256_file",
]

logger = logging.getLogger(__name__)

TEXT_ENCODERS_DIR = "text-encoders"


@dataclass(frozen=True)
class TextEncoderBundle:
    """Where the text-encoder graph and tokenizer live, and what they produce."""

    root: Path
    name: str
    version: str
    dim: int
    max_length: int

    @property
    def graph_path(self) -> Path:
        return self.root / TEXT_GRAPH_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.root / TOKENIZER_FILE


@dataclass(frozen=True)
class Bundle:
    """A verified image-model bundle: graph path, query books, names and operating points."""

    root: Path
    metadata: BundleMetadata
    name: str
    version: str
    sha256: str
    preprocessing: PreprocessingSpec
    pathology_names: tuple[str, ...]
    anatomy_names: tuple[str, ...]
    pathology_queries: np.ndarray  # (Qp, T)
    anatomy_queries: np.ndarray  # (Qa, T)
    thresholds: dict[str, float]
    default_threshold: float
    findings_reported: tuple[str, ...]
    structures: tuple[str, ...]
    segmentation_threshold: float
    text_encoder: TextEncoderBundle | None

    @property
    def graph_path(self) -> Path:
        """The full graph (`image_model.onnx`), which every bundle schema has."""
        return self.graph_path_for(FULL_GRAPH)

    @property
    def graph_names(self) -> tuple[str, ...]:
        """The contract graphs this bundle carries (schema 1: `image_model` only)."""
        return tuple(self.metadata.graphs)

    def graph_path_for(self, name: str, precision: str | None = None) -> Path:
        """File of graph `name` at `precision` (None: as stored); GraphContractError when it has none."""
        return self.root / graph_file(self.metadata.graphs[name], precision)

    @property
    def image_size(self) -> int:
        return self.preprocessing.image_size

    def threshold_for(self, name: str) -> float:
        """Operating point of a built-in finding, else the bundle's default threshold."""
        return self.thresholds.get(name, self.default_threshold)


def _verify_files(root: Path, files: dict[str, str]) -> None:
    problems = file_problems(root, files)
    if problems:
        raise BundleError(f"bundle {root.name}: " + "; ".join(problems))


def _load_text_encoder(root: Path, entry: TextEncoderRef, verify: bool) -> TextEncoderBundle:
    te_root = (root / entry.dir).resolve()
    meta = TextEncoderMetadata.read(te_root)
    if verify:
        _verify_files(te_root, meta.files)
        if entry.sha256 and sha256_file(te_root / TEXT_GRAPH_FILE) != entry.sha256:
            raise BundleError("text_encoder.onnx does not match the sha256 the image bundle expects")
    return TextEncoderBundle(
        root=te_root,
        name=meta.name,
        version=meta.version,
        dim=meta.dim,
        max_length=meta.max_length if "max_length" in meta.model_fields_set else entry.max_length,
    )


def _book(root: Path, section: QueryBook, label: str) -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(section.names)
    book = np.load(root / section.embeddings_file, allow_pickle=False).astype(np.float32)
    if book.ndim != 2 or book.shape[0] != len(names):
        raise BundleError(f"{label} book has shape {book.shape}, expected ({len(names)}, T)")
    return names, book


def load_bundle(root: Path, *, verify: bool = True) -> Bundle:
    """Read metadata.json, check schema and checksums, load both query books and the text-encoder entry."""
    root = root.resolve()
    meta = BundleMetadata.read(root)
    if FULL_GRAPH not in meta.graphs:
        raise BundleError(f"metadata.json lacks required key {FULL_GRAPH!r}")
    if verify:
        if "files" not in meta.model_fields_set:
            raise BundleError("metadata.json lacks required key 'files'")
        _verify_files(root, meta.files)
    pathology_names, pathology_book = _book(root, meta.pathology, "pathology")
    anatomy_names, anatomy_book = _book(root, meta.anatomy, "anatomy")
    if pathology_book.shape[1] != anatomy_book.shape[1]:
        raise BundleError("pathology and anatomy books differ in embedding width")
    text_encoder = _load_text_encoder(root, meta.text_encoder, verify) if meta.text_encoder else None
    if text_encoder and text_encoder.dim != pathology_book.shape[1]:
        raise BundleError(f"text encoder dim {text_encoder.dim} != book width {pathology_book.shape[1]}")
    seg = meta.segmentation
    unknown = [n for n in seg.structures if n not in SEGMENTATION_STRUCTURES]
    if unknown:
        raise BundleError(f"segmentation structures {unknown} are not in the bundle contract")
    full_graph = root / str(meta.graphs[FULL_GRAPH]["file"])
    bundle = Bundle(
        root=root,
        metadata=meta,
        name=meta.name,
        version=meta.version,
        sha256=meta.files.get(full_graph.name) or sha256_file(full_graph),
        preprocessing=meta.preprocessing_spec(),
        pathology_names=pathology_names,
        anatomy_names=anatomy_names,
        pathology_queries=pathology_book,
        anatomy_queries=anatomy_book,
        thresholds={name: point.threshold for name, point in meta.operating_points.items()},
        default_threshold=meta.default_threshold,
        findings_reported=tuple(meta.findings_reported or pathology_names),
        structures=tuple(seg.structures),
        segmentation_threshold=seg.threshold,
        text_encoder=text_encoder,
    )
    logger.info("bundle loaded", extra={"model": bundle.name, "version": bundle.version})
    return bundle


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Order versions numerically where they are numbers ("1.10.0" > "1.9.2")."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+]", version))


def resolve_default_bundle(store: Path, name: str | None = None, version: str | None = None) -> Path:
    """The bundle to serve: model `name` (or the single image-model name) at `version` (or the highest)."""
    if not store.is_dir():
        raise BundleError(f"model store {store} does not exist")
    names = sorted(
        p.name
        for p in store.iterdir()
        if p.is_dir() and p.name != TEXT_ENCODERS_DIR and not p.name.startswith(".")
    )
    if name is None:
        if not names:
            raise BundleError(
                f"model store {store} holds no image-model bundle; build one (medslip-build-default or "
                "medslip-export) or point MEDSLIP_MODEL_DIR / --model-dir at a bundle"
            )
        if len(names) != 1:
            raise BundleError(f"model store holds {len(names)} model names {names}; set MEDSLIP_MODEL_NAME")
        name = names[0]
    model_dir = store / name
    versions = (
        [p.name for p in model_dir.iterdir() if (p / "metadata.json").is_file()] if model_dir.is_dir() else []
    )
    if not versions:
        raise BundleError(f"no bundle versions for model {name!r} in {store}")
    chosen = version or max(versions, key=_version_key)
    if chosen not in versions:
        raise BundleError(f"version {chosen!r} of {name!r} not found (have {sorted(versions)})")
    return model_dir / chosen
