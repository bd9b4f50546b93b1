"""Domain errors -> RFC 9457 `application/problem+json` responses: the one mapping and its handlers.

Why one place: clients (the PACS bridge, scripts) branch on the stable `code`, so every failure path,
including FastAPI's own validation and routing errors, must come out in the same shape. The engine
raises plain domain errors (`app.errors.ServiceError`, `app.contract.imaging.ImagingError`); `PROBLEM_TYPES`
gives each class its status and title, and `problem_for` turns an instance into (status, code, title,
detail, headers). A test walks every domain error class and checks it has an entry here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app import errors
from app.contract import imaging as img
from app.metrics import ServiceMetrics
from app.request_context import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Status recorded (never sent: nobody is listening) when the client hung up before the answer.
CLIENT_CLOSED_STATUS = 499
CLIENT_CLOSED_CODE = "client_closed_request"

#: The exception roots whose subclasses are domain errors (each must have an entry in PROBLEM_TYPES).
DOMAIN_ERRORS: tuple[type[Exception], ...] = (errors.ServiceError, img.ImagingError)

IMAGE_REFUSED = "Image refused"


@dataclass(frozen=True)
class ProblemType:
    """How one domain error class is sent: its HTTP status, title and any fixed headers."""

    status: int
    title: str
    headers: Mapping[str, str] = field(default_factory=dict)


#: Every domain error class -> its problem type. The class's `code` names the problem.
PROBLEM_TYPES: dict[type[Exception], ProblemType] = {
    errors.ServiceError: ProblemType(500, "Internal error"),
    errors.QueueFullError: ProblemType(503, "Inference queue is full"),
    errors.LatencyBudgetExceededError: ProblemType(503, "Expected wait exceeds the latency budget"),
    errors.UploadBudgetExceededError: ProblemType(503, "Too many request bytes buffered"),
    errors.DecodeBudgetExceededError: ProblemType(503, "Too many pixels being decoded"),
    errors.RequestTimeoutError: ProblemType(408, "Request body arrived too slowly"),
    errors.DeadlineExceededError: ProblemType(504, "Request deadline exceeded"),
    errors.PayloadTooLargeError: ProblemType(413, "Request body too large"),
    errors.MissingFileError: ProblemType(400, "No image in the request"),
    errors.MalformedMultipartError: ProblemType(400, "Unreadable multipart body"),
    errors.UnauthorizedError: ProblemType(401, "Missing or invalid API key", {"WWW-Authenticate": "Bearer"}),
    errors.UnknownNameError: ProblemType(422, "Unknown finding or anatomy name"),
    errors.TextEncoderUnavailableError: ProblemType(422, "Free-text findings need a text encoder"),
    errors.InvalidParameterError: ProblemType(400, "Invalid request parameter"),
    errors.UnknownModelError: ProblemType(404, "Unknown model"),
    errors.ModelNotReadyError: ProblemType(503, "Model is not loaded yet"),
    errors.InferenceFailedError: ProblemType(500, "Inference failed for this batch"),
    errors.ShuttingDownError: ProblemType(503, "Service is shutting down"),
    img.ImagingError: ProblemType(422, IMAGE_REFUSED),
    img.UnsupportedMediaTypeError: ProblemType(415, IMAGE_REFUSED),
    img.ImageTooLargeError: ProblemType(413, IMAGE_REFUSED),
    img.ImageTooSmallError: ProblemType(422, IMAGE_REFUSED),
    img.InvalidDicomError: ProblemType(422, IMAGE_REFUSED),
    img.UnsupportedTransferSyntaxError: ProblemType(422, IMAGE_REFUSED),
    img.UnsupportedViewError: ProblemType(422, IMAGE_REFUSED),
    img.MultiFrameError: ProblemType(422, IMAGE_REFUSED),
    img.NotAnImageError: ProblemType(422, IMAGE_REFUSED),
    img.UnsupportedPhotometricError: ProblemType(422, IMAGE_REFUSED),
    img.CorruptImageError: ProblemType(422, IMAGE_REFUSED),
    img.NotChestError: ProblemType(422, IMAGE_REFUSED),
}


@dataclass(frozen=True)
class Problem:
    """One domain error as HTTP: what `problem_response` sends."""

    status: int
    code: str
    title: str
    detail: str
    headers: dict[str, str]


def problem_type(cls: type[Exception]) -> ProblemType:
    """The entry of `cls`, or of its nearest mapped base class."""
    for base in cls.__mro__:
        entry = PROBLEM_TYPES.get(base)
        if entry is not None:
            return entry
    raise KeyError(f"{cls.__name__} is not a domain error")


def problem_for(exc: errors.ServiceError | img.ImagingError) -> Problem:
    """The status, code, title, detail and headers a domain error is sent with."""
    kind = problem_type(type(exc))
    code = str(exc.code)
    detail = str(exc.detail) or code.replace("_", " ")
    headers = dict(kind.headers)
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return Problem(kind.status, code, kind.title, detail, headers)


def problem_body(
    status: int, code: str, title: str, detail: str, *, instance: str | None = None
) -> dict[str, Any]:
    """The RFC 9457 body; `type` is a URN per code so it is stable without a hosted page."""
    body: dict[str, Any] = {
        "type": f"urn:medslip:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    if instance:
        body["instance"] = instance
    return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response (see `problem_body`)."""
    body = problem_body(status, code, title, detail, instance=instance)
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def domain_error_response(
    exc: errors.ServiceError | img.ImagingError, *, instance: str | None, metrics: ServiceMetrics | None
) -> JSONResponse:
    """The response for a domain error, counted in medslip_rejections_total; also used by the middleware."""
    problem = problem_for(exc)
    if metrics is not None:
        metrics.rejections.labels(reason=problem.code).inc()
    if problem.status >= 500:
        logger.warning("request failed", extra={"code": problem.code, "status": problem.status})
    return problem_response(
        problem.status,
        problem.code,
        problem.title,
        problem.detail,
        headers=problem.headers,
        instance=instance,
    )


def _count_rejection(request: Request, code: str) -> None:
    """Every refused request lands in medslip_rejections_total{reason=code}."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rejections.labels(reason=code).inc()


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, (errors.ServiceError, img.ImagingError))
    metrics = getattr(request.app.state, "metrics", None)
    return domain_error_response(exc, instance=request.url.path, metrics=metrics)


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    """The client hung up mid-upload: a client outcome (499), not a server error; nothing is sent."""
    assert isinstance(exc, ClientDisconnect)
    _count_rejection(request, CLIENT_CLOSED_CODE)
    return problem_response(
        CLIENT_CLOSED_STATUS,
        CLIENT_CLOSED_CODE,
        "Client closed the request",
        "the client disconnected before the request was complete",
        instance=request.url.path,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _count_rejection(request, "invalid_request")
    # Why: only locations and messages, never the submitted values (they could carry patient data).
    errors_ = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
    return problem_response(
        422,
        "invalid_request",
        "Invalid request",
        "request parameters failed validation",
        instance=request.url.path,
        extra={"errors": errors_},
    )


#: Framework (routing) errors: status -> code.
HTTP_ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
    _count_rejection(request, code)
    return problem_response(
        exc.status_code,
        code,
        str(exc.detail),
        str(exc.detail),
        headers=dict(exc.headers or {}),
        instance=request.url.path,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", extra={"error_type": type(exc).__name__}, exc_info=exc)
    return problem_response(
        500, "internal_error", "Internal error", "unexpected server error", instance=request.url.path
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register every exception -> problem+json mapping on `app`."""
    for root in DOMAIN_ERRORS:
        app.add_exception_handler(root, _domain_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
