"""The service's three answers for one image, parsed with the service's own response models.

The bridge writes these numbers into DICOM objects a PACS keeps for years, so they are validated
against `app.contract.http` (the HTTP contract) when they arrive and again when they are read back from the
spool, instead of being passed around as untyped dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.contract.http import ClassifyResponse, GroundResponse, SegmentResponse


@dataclass(frozen=True)
class InferenceResult:
    """/classify, /ground (None when no finding was grounded) and /segment, verbatim but typed."""

    classify: ClassifyResponse
    ground: GroundResponse | None
    segment: SegmentResponse

    def to_json(self) -> dict[str, Any]:
        return {
            "classify": self.classify.model_dump(mode="json"),
            "ground": None if self.ground is None else self.ground.model_dump(mode="json"),
            "segment": self.segment.model_dump(mode="json"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InferenceResult:
        """Validate a spooled answer (raises pydantic.ValidationError when it breaks the contract)."""
        ground = data.get("ground")
        if ground is not None and not ground.get("findings"):
            ground = None  # spooled by earlier bridge versions as {"findings": []}: nothing grounded
        return cls(
            classify=ClassifyResponse.model_validate(data["classify"]),
            ground=None if ground is None else GroundResponse.model_validate(ground),
            segment=SegmentResponse.model_validate(data["segment"]),
        )
