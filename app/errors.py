"""Domain exceptions and their single mapping to RFC 9457 `application/problem+json` responses.

Why one place: clients (the PACS bridge, scripts) branch on the stable `code`, so every failure path,
including FastAPI's own validation and routing errors, must come out in the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.imaging import ImagingError
from app.metrics import ServiceMetrics
from app.request_context import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: HTTP status for each pixel-module error code (docs/contracts.md); unknown codes -> 422.
IMAGING_STATUS: dict[str, int] = {
    "unsupported_media_type": 415,
    "image_too_large": 413,
    "image_too_small": 422,
    "invalid_dicom": 422,
    "unsupported_transfer_syntax": 422,
    "unsupported_view": 422,
    "multi_frame": 422,
    "not_an_image": 422,
    "unsupported_photometric": 422,
    "corrupt_image": 422,
    "not_chest": 422,
}


class ServiceError(Exception):
    """A failure with a stable machine-readable `code`, an HTTP status and a patient-data-free detail."""

    code = "internal_error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class QueueFullError(ServiceError):
    code, status, title = "queue_full", 503, "Inference queue is full"


class LatencyBudgetExceededError(ServiceError):
    code, status, title = "latency_budget_exceeded", 503, "Expected wait exceeds the latency budget"


class UploadBudgetExceededError(ServiceError):
    code, status, title = "upload_budget_exceeded", 503, "Too many request bytes buffered"


class DecodeBudgetExceededError(ServiceError):
    code, status, title = "decode_budget_exceeded", 503, "Too many pixels being decoded"


class RequestTimeoutError(ServiceError):
    code, status, title = "request_timeout", 408, "Request body arrived too slowly"


class DeadlineExceededError(ServiceError):
    code, status, title = "deadline_exceeded", 504, "Request deadline exceeded"


class PayloadTooLargeError(ServiceError):
    code, status, title = "payload_too_large", 413, "Request body too large"


class UnsupportedMediaTypeError(ServiceError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class MissingFileError(ServiceError):
    code, status, title = "missing_file", 400, "No image in the request"


class UnauthorizedError(ServiceError):
    code, status, title = "unauthorized", 401, "Missing or invalid API key"


class UnknownNameError(ServiceError):
    code, status, title = "unknown_name", 422, "Unknown finding or anatomy name"


class TextEncoderUnavailableError(ServiceError):
    code, status, title = "text_encoder_unavailable", 422, "Free-text findings need a text encoder"


class InvalidParameterError(ServiceError):
    code, status, title = "invalid_parameter", 400, "Invalid request parameter"


class UnknownModelError(ServiceError):
    code, status, title = "unknown_model", 404, "Unknown model"


class ModelNotReadyError(ServiceError):
    code, status, title = "model_not_ready", 503, "Model is not loaded yet"


class InferenceFailedError(ServiceError):
    code, status, title = "inference_failed", 500, "Inference failed for this batch"


class ShuttingDownError(ServiceError):
    code, status, title = "shutting_down", 503, "Service is shutting down"


#: Status recorded (never sent: nobody is listening) when the client hung up before the answer.
CLIENT_CLOSED_STATUS = 499
CLIENT_CLOSED_CODE = "client_closed_request"


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


def service_error_response(
    exc: ServiceError, *, instance: str | None, metrics: ServiceMetrics | None
) -> JSONResponse:
    """The response for a ServiceError, counted in medslip_rejections_total; also used by the middleware."""
    if metrics is not None:
        metrics.rejections.labels(reason=exc.code).inc()
    if exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code, "status": exc.status})
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, instance=instance
    )


def _count_rejection(request: Request, code: str) -> None:
    """Every refused request lands in medslip_rejections_total{reason=code}, here and only here."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rejections.labels(reason=code).inc()


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    metrics = getattr(request.app.state, "metrics", None)
    return service_error_response(exc, instance=request.url.path, metrics=metrics)


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


async def _imaging_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImagingError)
    code = str(getattr(exc, "code", "corrupt_image"))
    detail = str(getattr(exc, "detail", "")) or code.replace("_", " ")
    status = IMAGING_STATUS.get(code, 422)
    _count_rejection(request, code)
    return problem_response(status, code, "Image refused", detail, instance=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _count_rejection(request, "invalid_request")
    # Why: only locations and messages, never the submitted values (they could carry patient data).
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
    return problem_response(
        422,
        "invalid_request",
        "Invalid request",
        "request parameters failed validation",
        instance=request.url.path,
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
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
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(ImagingError, _imaging_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
