"""The bridge's HTTP face: STOW-RS ingress (POST /studies), /health and /metrics."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import pydicom
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.bridge.dicomweb import (
    FAILURE_CANNOT_UNDERSTAND,
    FAILURE_DATASET_MISMATCH,
    FAILURE_OUT_OF_RESOURCES,
    FAILURE_SOP_CLASS_NOT_SUPPORTED,
    FailedInstance,
    MultipartError,
    StoredInstance,
    content_type_params,
    parse_multipart_related,
    store_response,
)
from app.bridge.metrics import BridgeMetrics
from app.bridge.scp import ACCEPTED_SOP_CLASSES
from app.bridge.spool import InstanceHeader, Spool, StoreOutcome

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
_ACCEPTED_SOP_CLASS_UIDS = frozenset(str(uid) for uid in ACCEPTED_SOP_CLASSES)


def problem(status: int, code: str, detail: str) -> JSONResponse:
    """RFC 9457 problem+json with a stable `code`, like the inference service's errors."""
    return JSONResponse(
        {
            "type": "about:blank",
            "title": code.replace("_", " "),
            "status": status,
            "code": code,
            "detail": detail,
        },
        status_code=status,
        media_type="application/problem+json",
    )


def _store_part(
    spool: Spool, payload: bytes, expected_study: str | None
) -> tuple[StoredInstance, StoreOutcome] | FailedInstance:
    """Validate and spool one STOW part; a failure names the PS3.18 reason, never raises.

    A success carries the spool's outcome: a duplicate or a re-queued dead letter is acknowledged to
    the sender like a new instance (PS3.18), but the ingress metric counts it under its own outcome.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(payload), stop_before_pixels=True)
        header = InstanceHeader.from_dataset(ds)
    except Exception:
        return FailedInstance("", "", FAILURE_CANNOT_UNDERSTAND)
    if header.sop_class_uid not in _ACCEPTED_SOP_CLASS_UIDS:
        return FailedInstance(header.sop_class_uid, header.sop_instance_uid, FAILURE_SOP_CLASS_NOT_SUPPORTED)
    if expected_study is not None and header.study_instance_uid != expected_study:
        return FailedInstance(header.sop_class_uid, header.sop_instance_uid, FAILURE_DATASET_MISMATCH)
    try:
        outcome, _ = spool.store(payload, header, ingress="stow")
    except OSError:
        return FailedInstance(header.sop_class_uid, header.sop_instance_uid, FAILURE_OUT_OF_RESOURCES)
    return StoredInstance(header.sop_class_uid, header.sop_instance_uid), outcome


def create_app(
    spool: Spool, metrics: BridgeMetrics, max_body_bytes: int, health: Callable[[], dict[str, Any]]
) -> FastAPI:
    """FastAPI app bound to one spool; `health` reports the state of the other components."""
    app = FastAPI(title="MeDSLIP PACS bridge", docs_url=None, redoc_url=None)

    async def stow(request: Request, study: str | None) -> Response:
        media_type, boundary, part_type = content_type_params(request.headers.get("content-type", ""))
        if media_type != "multipart/related" or boundary is None:
            return problem(
                415, "unsupported_media_type", "expected multipart/related; type=application/dicom"
            )
        if part_type not in (None, "application/dicom"):
            return problem(415, "unsupported_media_type", "only application/dicom parts are accepted")
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > max_body_bytes:
            return problem(413, "payload_too_large", f"limit is {max_body_bytes} bytes")
        body = await request.body()
        if len(body) > max_body_bytes:
            return problem(413, "payload_too_large", f"limit is {max_body_bytes} bytes")
        try:
            parts = parse_multipart_related(body, boundary)
        except MultipartError as exc:
            return problem(400, "invalid_multipart", str(exc))
        stored: list[StoredInstance] = []
        failed: list[FailedInstance] = []
        for headers, payload in parts:
            if headers.get("content-type", "application/dicom").split(";")[0].strip() != "application/dicom":
                failed.append(FailedInstance("", "", FAILURE_CANNOT_UNDERSTAND))
                continue
            result = await run_in_threadpool(_store_part, spool, payload, study)
            if isinstance(result, FailedInstance):
                failed.append(result)
                continue
            instance, outcome = result
            stored.append(instance)
            metrics.received.labels("stow", outcome.value).inc()
        for _ in failed:
            metrics.received.labels("stow", "rejected").inc()
        status, response_body = store_response(stored, failed)
        logger.info("STOW-RS request", extra={"stored": len(stored), "failed": len(failed), "status": status})
        return JSONResponse(response_body, status_code=status, media_type=DICOM_JSON)

    @app.post("/studies")
    async def stow_studies(request: Request) -> Response:
        return await stow(request, None)

    @app.post("/studies/{study}")
    async def stow_study(request: Request, study: str) -> Response:
        return await stow(request, study)

    @app.get("/health")
    def get_health() -> JSONResponse:
        report = health()
        return JSONResponse(report, status_code=200 if report.get("status") == "ok" else 503)

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
