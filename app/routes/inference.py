"""POST /classify, /ground, /segment: thin wrappers over InferenceService."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.contract.http import (
    INFERENCE_STATUSES,
    ClassifyResponse,
    GroundResponse,
    SegmentResponse,
    problem_responses,
)
from app.dependencies import (
    ImageUpload,
    get_service,
    image_upload,
    request_options,
    require_api_key,
    segment_options,
)
from app.request_context import current_request_id
from app.request_types import RequestOptions
from app.service import InferenceService

#: OpenAPI request body: the image as a multipart field or as the raw body (read by `image_upload`).
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

router = APIRouter(
    tags=["inference"],
    dependencies=[Depends(require_api_key)],
    responses=problem_responses(*INFERENCE_STATUSES),
)

Service = Annotated[InferenceService, Depends(get_service)]
Options = Annotated[RequestOptions, Depends(request_options)]
SegmentOptions = Annotated[RequestOptions, Depends(segment_options)]
Upload = Annotated[ImageUpload, Depends(image_upload)]


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    openapi_extra=IMAGE_BODY,
    summary="Score findings (built-in names or free text)",
)
async def classify(service: Service, options: Options, upload: Upload) -> dict[str, Any]:
    """Scores for the bundle's reported findings, or for those asked with `findings` (repeatable)."""
    result = await service.classify(upload.data, upload.media_type, options)
    return {**result, "request_id": current_request_id()}


@router.post(
    "/ground",
    response_model=GroundResponse,
    openapi_extra=IMAGE_BODY,
    summary="Scores plus heatmaps, peaks, boxes and anatomical regions in original pixels",
)
async def ground(service: Service, options: Options, upload: Upload) -> dict[str, Any]:
    """Where each finding is: heatmap (PNG, original size), peak, box and anatomy regions best first."""
    result = await service.ground(upload.data, upload.media_type, options)
    return {**result, "request_id": current_request_id()}


@router.post(
    "/segment",
    response_model=SegmentResponse,
    openapi_extra=IMAGE_BODY,
    summary="Masks of anatomy structures and findings at original resolution",
)
async def segment(service: Service, options: SegmentOptions, upload: Upload) -> dict[str, Any]:
    """Masks for `anatomy` structures (segmentation head) and `findings` (thresholded grounding maps)."""
    result = await service.segment(upload.data, upload.media_type, options)
    return {**result, "request_id": current_request_id()}
