"""The typed model of a bundle's `metadata.json` (docs/contracts.md, "Bundle"): one definition for the
exporter (training/export/), the service's loader (`app.contract.bundle`), the tests' tiny bundle and
every tool that reads or rewrites a bundle.

Why one model: the exporter and the service must agree on every key and type, and a bundle must be
refused for the same reasons wherever it is checked. `read` parses and checks the schema version,
`verify` adds the completeness rules (every key of the contract present, every file listed with its
sha256, no unlisted file), `write` re-hashes the files and writes the document last.

Round trip: unknown keys are kept (`extra="allow"`) and a document is dumped with the keys it was given,
in the order of the fields (the exporter's order), so reading and writing a shipped `metadata.json`
changes no byte. Sections whose content belongs to another owner (architecture, preprocessing, graph
entries, training data, metrics) stay JSON objects here: their rules live with their owners
(`PreprocessingSpec`, `app.contract.graphs.graph_problems`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from app.contract.bundle_files import METADATA_FILE, BundleError, bundle_files, file_problems
from app.contract.graphs import graph_problems
from app.contract.imaging.preprocessing import PreprocessingSpec

__all__ = [
    "TEXT_GRAPH_FILE",
    "TEXT_SCHEMA_VERSION",
    "TOKENIZER_FILE",
    "BundleMetadata",
    "OperatingPoint",
    "QueryBook",
    "SegmentationSection",
    "TextEncoderMetadata",
    "TextEncoderRef",
    "metadata_class",
    "read_document",
]

logger = logging.getLogger(__name__)

#: Text-encoder bundles have their own, unchanged schema (image bundles: app/contract/graphs.py).
TEXT_SCHEMA_VERSION = 1
#: The files of a text-encoder bundle; its graph among a bundle's files makes it a text-encoder bundle.
TEXT_GRAPH_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"

Shape = list[str | int]


class _Section(BaseModel):
    """A JSON object of metadata.json: typed where the contract fixes a key, other keys kept as given."""

    model_config = ConfigDict(extra="allow")

    def document(self) -> dict[str, Any]:
        """The JSON object: the keys it was given (or assigned), none added."""
        return self.model_dump(mode="json", exclude_unset=True)


class TextEncoderRef(_Section):
    """The image bundle's `text_encoder` entry: where its encoder lives and what it must match."""

    name: str
    dir: str
    version: str | None = None
    dim: int
    max_length: int = 64
    pooling: str | None = None
    normalize: bool | None = None
    sha256: str | None = None
    book_min_cosine: dict[str, float] | None = None


class QueryBook(_Section):
    """`pathology` / `anatomy`: query names (in graph order), their texts and the embeddings file."""

    names: list[str]
    query_texts: list[str] = []
    embeddings_file: str


class OperatingPoint(_Section):
    """One finding's threshold and where it came from (further figures kept as the evaluation gave them)."""

    threshold: float
    source: str = ""


class SegmentationSection(_Section):
    """The structures the bundle segments (a subset of `SEGMENTATION_STRUCTURES`) and their threshold."""

    structures: list[str] = []
    threshold: float = 0.5


class _Metadata(_Section):
    """read / verify / write of one kind of bundle; subclasses name their required keys and schema."""

    #: Top-level keys a complete bundle of this kind has (checked by `verify`, not by `read`).
    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = ()

    if TYPE_CHECKING:  # each kind declares `files` last, where the exporter writes it
        files: dict[str, str]

    @classmethod
    def schema_problems(cls, document: Mapping[str, Any]) -> list[str]:
        """Why the document's schema version (and what hangs on it) is not one this release reads."""
        raise NotImplementedError

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> Self:
        """The typed metadata of a JSON object; BundleError naming every unreadable key."""
        try:
            return cls.model_validate(dict(document))
        except ValidationError as exc:
            raise BundleError("; ".join(_field_problems(exc))) from exc

    @classmethod
    def read(cls, bundle_dir: Path) -> Self:
        """Parsed and typed metadata; BundleError when absent, of a schema this release does not read
        (said first, whatever else differs), or of the wrong types."""
        document = read_document(bundle_dir)
        problems = cls.schema_problems(document)
        if problems:
            raise BundleError(f"bundle {bundle_dir.name}: " + "; ".join(problems))
        return cls.parse(document)

    @classmethod
    def problems(cls, bundle_dir: Path) -> list[str]:
        """Every reason the bundle is not intact (empty list = intact): a missing key, a value of the
        wrong type, a schema this release does not read, a listed file missing or changed, a file that
        is not listed."""
        try:
            document = read_document(bundle_dir)
        except BundleError as exc:
            return [str(exc)]
        return cls._document_problems(bundle_dir, document)

    @classmethod
    def _document_problems(cls, bundle_dir: Path, document: dict[str, Any]) -> list[str]:
        listed = document.get("files")
        if not isinstance(listed, dict):
            return ["metadata has no 'files' mapping"]
        problems = [f"missing metadata key {key!r}" for key in cls.REQUIRED_KEYS if key not in document]
        try:
            cls.model_validate(document)
        except ValidationError as exc:
            problems.extend(_field_problems(exc, missing=False))
        problems.extend(cls.schema_problems(document))
        problems.extend(file_problems(bundle_dir, listed))
        return problems

    @classmethod
    def verify(cls, bundle_dir: Path) -> Self:
        """The metadata of an intact bundle; BundleError listing every problem otherwise (the file is
        read and parsed once)."""
        try:
            document = read_document(bundle_dir)
        except BundleError as exc:
            raise BundleError(f"bundle {bundle_dir.name}: {exc}") from exc
        problems = cls._document_problems(bundle_dir, document)
        if problems:
            raise BundleError(f"bundle {bundle_dir.name}: " + "; ".join(problems))
        return cls.parse(document)

    def write(self, bundle_dir: Path) -> Self:
        """Write `metadata.json` with its `files` hashes recomputed from disk; returns what was written.

        Written last, after every other file, so the hashes describe the final bundle."""
        written = type(self).parse({**self.document(), "files": bundle_files(bundle_dir)})
        text = json.dumps(written.document(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        (bundle_dir / METADATA_FILE).write_text(text, encoding="utf-8")
        logger.info("wrote %s with %d file hashes", bundle_dir / METADATA_FILE, len(written.files))
        return written


class BundleMetadata(_Metadata):
    """An image-model bundle's metadata.json (`schema_version` 1 or 2), fields in the exporter's order."""

    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = (
        "schema_version", "name", "version", "created", "description", "intended_use", "architecture",
        "preprocessing", "graphs", "text_encoder", "pathology", "anatomy", "operating_points",
        "default_threshold", "findings_reported", "segmentation", "training_data", "metrics", "files",
    )

    schema_version: int
    name: str
    version: str
    created: str = ""
    description: str = ""
    intended_use: str = ""
    architecture: dict[str, Any] = {}
    preprocessing: dict[str, Any]
    graphs: dict[str, dict[str, Any]]
    text_encoder: TextEncoderRef | None = None
    pathology: QueryBook
    anatomy: QueryBook
    operating_points: dict[str, OperatingPoint] = {}
    default_threshold: float = 0.5
    findings_reported: list[str] = []
    segmentation: SegmentationSection = SegmentationSection()
    training_data: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    files: dict[str, str] = {}

    @classmethod
    def schema_problems(cls, document: Mapping[str, Any]) -> list[str]:
        graphs = document.get("graphs")
        return graph_problems(document.get("schema_version"), graphs if isinstance(graphs, dict) else {})

    def preprocessing_spec(self) -> PreprocessingSpec:
        """The pixel contract this bundle's graphs expect; BundleError when the section is invalid."""
        try:
            return PreprocessingSpec.from_dict(dict(self.preprocessing))
        except ValueError as exc:
            raise BundleError(f"metadata preprocessing: {exc}") from exc


class TextEncoderMetadata(_Metadata):
    """A text-encoder bundle's metadata.json (`schema_version` 1), fields in the exporter's order."""

    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = (
        "schema_version", "name", "version", "dim", "max_length", "pooling", "normalize", "files",
    )

    schema_version: int
    name: str
    version: str
    dim: int
    max_length: int = 64
    pooling: str = "mean"
    normalize: bool = True
    precision: str | None = None
    inputs: dict[str, Shape] | None = None
    outputs: dict[str, Shape] | None = None
    source: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    sha256: str | None = None
    files: dict[str, str] = {}

    @classmethod
    def schema_problems(cls, document: Mapping[str, Any]) -> list[str]:
        version = document.get("schema_version")
        if version != TEXT_SCHEMA_VERSION:
            return [f"schema_version is {version!r}, expected {TEXT_SCHEMA_VERSION}"]
        return []


def metadata_class(files: Iterable[str]) -> type[BundleMetadata] | type[TextEncoderMetadata]:
    """The kind of bundle whose files these are: a text encoder when its graph is among them."""
    return TextEncoderMetadata if TEXT_GRAPH_FILE in set(files) else BundleMetadata


def read_document(bundle_dir: Path) -> dict[str, Any]:
    """The raw JSON object of `metadata.json`; BundleError when absent or not a JSON object."""
    path = bundle_dir / METADATA_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {METADATA_FILE}: {exc}") from exc
    if not isinstance(document, dict):
        raise BundleError(f"{METADATA_FILE} is not a JSON object")
    return document


def _field_problems(exc: ValidationError, *, missing: bool = True) -> list[str]:
    """One line per invalid key (the values are never quoted: a header-derived value must not leak)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            if missing:
                problems.append(f"metadata.json lacks required key {where!r}")
        else:
            problems.append(f"metadata key {where!r}: {error['msg']}")
    return problems
