"""FastAPI dependencies shared by the routes: settings, the ready service, auth, request options, body.

Why dependencies: each route declares what it needs with `Annotated[...]` and stays a few lines long.
They are `async def` although they never await: FastAPI runs plain `def` dependencies in a worker
thread, and four thread hops per request cost more than these few lines of work.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.batching import Priority
from app.contract.imaging import UnsupportedMediaTypeError
from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from app.errors import (
    MissingFileError,
    ModelNotReadyError,
    ShuttingDownError,
    UnauthorizedError,
    UnknownModelError,
)
from app.metrics import ServiceMetrics
from app.request_types import RequestOptions
from app.service import InferenceService
from app.settings import MAX_DEADLINE_MS, Settings
from app.upload_form import read_file_part

RAW_MEDIA_TYPES = frozenset({"application/dicom", "image/png", "image/jpeg"})
MULTIPART = "multipart/form-data"
PRIORITIES = tuple(p.value for p in Priority)

#: The two ways to present an API key, as OpenAPI security schemes (either one will do).
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="API key (when the service is configured with keys)",
    auto_error=False,
)
BEARER = HTTPBearer(scheme_name="Bearer", description="The same API key as a bearer token", auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_service(request: Request) -> InferenceService:
    """The loaded and warmed-up service; 503 shutting_down while draining, model_not_ready before ready."""
    settings: Settings = request.app.state.settings
    if request.app.state.in_flight.draining:
        raise ShuttingDownError(
            "the service is draining; retry on another replica",
            retry_after_s=settings.retry_after_s,
        )
    service: InferenceService | None = getattr(request.app.state, "service", None)
    if service is None or not request.app.state.ready:
        raise ModelNotReadyError("the model is still loading or warming up", retry_after_s=5)
    return service


async def known_model(
    request: Request, name: Annotated[str, Path(description="Model name (see /v2/models/{name})")]
) -> str:
    """The model name of the path when it is the served one (known from start-up), else 404."""
    if name != getattr(request.app.state, "model_name", None):
        raise UnknownModelError("no model by that name is served")
    return name


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> None:
    """Constant-time check of X-API-Key or `Authorization: Bearer <key>` against every configured key."""
    if not settings.api_keys:
        return
    presented = x_api_key
    if presented is None and bearer is not None:
        presented = bearer.credentials.strip()
    candidate = (presented or "").encode()
    matched = False
    for key in settings.api_keys:  # no early exit: time does not depend on which key matched
        matched |= hmac.compare_digest(candidate, key.get_secret_value().encode())
    if not presented or not matched:
        raise UnauthorizedError("send a valid key in X-API-Key or Authorization: Bearer")


async def request_options(
    settings: Annotated[Settings, Depends(get_settings)],
    *,
    findings: Annotated[
        list[str],
        Query(
            description="Finding to report (repeatable): a built-in name or free text (custom).",
            examples=["effusion", "patchy opacity in the left lower lobe"],
        ),
    ] = [],  # noqa: B006 (FastAPI idiom)
    allow_lateral: Annotated[bool, Query(description="Accept lateral views (LL/RL/LATERAL).")] = False,
    input_image: Annotated[
        bool,
        Query(
            description="Add the decoded film, as the model saw it before the letterbox, to `input.image` "
            "(8-bit gray PNG) for display: browsers cannot render DICOM."
        ),
    ] = False,
    x_priority: Annotated[
        str | None,
        Header(
            description="`stat` jumps the batching queue; any other value is routine.",
            json_schema_extra={"enum": list(PRIORITIES)},
        ),
    ] = None,
    x_deadline_ms: Annotated[
        float | None,
        Header(
            gt=0,
            le=MAX_DEADLINE_MS,
            description="Give up (504 deadline_exceeded) after this many ms; default "
            "MEDSLIP_DEFAULT_DEADLINE_MS.",
        ),
    ] = None,
) -> RequestOptions:
    """Options shared by every inference route; the deadline clock starts here."""
    budget_ms = x_deadline_ms if x_deadline_ms is not None else settings.default_deadline_ms
    priority = Priority.STAT if (x_priority or "").strip().lower() == Priority.STAT else Priority.ROUTINE
    return RequestOptions(
        findings=tuple(findings),
        allow_lateral=allow_lateral,
        input_image=input_image,
        priority=priority,
        deadline=None if budget_ms is None else time.monotonic() + budget_ms / 1000.0,
    )


async def segment_options(
    base: Annotated[RequestOptions, Depends(request_options)],
    *,
    anatomy: Annotated[
        list[str],
        Query(
            description="Structure to segment (repeatable), the patient's side.",
            examples=["left_lung"],
            json_schema_extra={"items": {"type": "string", "enum": list(SEGMENTATION_STRUCTURES)}},
        ),
    ] = [],  # noqa: B006 (FastAPI idiom)
    rle: Annotated[
        bool, Query(description="Add COCO RLE (uncompressed, column-major) to each mask.")
    ] = False,
) -> RequestOptions:
    """/segment's extra options on top of the shared ones."""
    return replace(base, anatomy=tuple(anatomy), rle=rle)


@dataclass(frozen=True)
class ImageUpload:
    data: bytes
    media_type: str | None  # None: let the decoder sniff (multipart parts sent as octet-stream)


async def image_upload(request: Request) -> ImageUpload:
    """The image from multipart field `file` or a raw application/dicom | image/png | image/jpeg body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == MULTIPART:
        part = await read_file_part(request.headers["content-type"], request.stream())
        data = part.data
        resolved: str | None = part.content_type if part.content_type in RAW_MEDIA_TYPES else None
    elif media_type in RAW_MEDIA_TYPES:
        data = await request.body()
        resolved = media_type
    else:
        raise UnsupportedMediaTypeError(
            "send multipart/form-data (field `file`) or a body of application/dicom, image/png or image/jpeg"
        )
    if not data:
        raise MissingFileError("the image is empty")
    return ImageUpload(data, resolved)
