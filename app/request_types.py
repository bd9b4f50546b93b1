"""The values one request carries through the service: what the client asked for, the findings it
resolved to, the item queued for a batch and what comes back from it.

Kept apart from `InferenceService` so the routes and request parsing (`app.dependencies`) name them
without the pipeline that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.batching import Priority
from app.contract.graphs import ENDPOINT_OUTPUTS
from app.contract.imaging import ImageInfo, Letterbox
from app.decode_pool import RenderedFilm
from app.runtime import ModelOutputs


@dataclass(frozen=True)
class RequestOptions:
    """What the client asked for, already parsed from query parameters and headers."""

    findings: tuple[str, ...] = ()
    anatomy: tuple[str, ...] = ()
    allow_lateral: bool = False
    rle: bool = False
    input_image: bool = False  # add the decoded film (PNG) to the response's `input`
    priority: Priority = Priority.ROUTINE
    deadline: float | None = None  # time.monotonic() instant


@dataclass(frozen=True)
class FindingRef:
    """A requested finding: a built-in query index, or a free-text query (custom)."""

    name: str
    index: int | None
    threshold: float
    calibrated: bool = False  # threshold is a validated operating point, not the bundle default

    @property
    def custom(self) -> bool:
        return self.index is None


@dataclass(frozen=True)
class BatchItem:
    image: np.ndarray  # (3, S, S)
    custom_queries: np.ndarray  # (Qc, T)
    outputs: frozenset[str] = ENDPOINT_OUTPUTS["segment"]  # what its endpoint reads


@dataclass(frozen=True)
class Inference:
    info: ImageInfo  # the decoded pixels themselves are dropped once preprocessed
    box: Letterbox
    outputs: ModelOutputs  # this image's, batch axis removed
    findings: list[FindingRef]
    timing_ms: dict[str, float]
    batch_size: int
    rendered: RenderedFilm | None = None
