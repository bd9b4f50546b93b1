"""Health (plain and Open Inference Protocol v2), model metadata and Prometheus metrics; never behind auth."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.contract.http import Liveness, ModelReadiness, Readiness, problem_responses
from app.dependencies import get_metrics, get_service, known_model
from app.metrics import METRICS_CONTENT_TYPE, ServiceMetrics
from app.problems import problem_response
from app.service import InferenceService

router = APIRouter(tags=["operations"])

READY_RESPONSES = problem_responses(503)
MODEL_RESPONSES = problem_responses(404, 422, 503)


def _not_ready(request: Request) -> Response | None:
    """503 while loading, warming up or draining (shutting_down); None when ready."""
    if request.app.state.in_flight.draining:
        retry_after = str(request.app.state.settings.retry_after_s)
        return problem_response(
            503,
            "shutting_down",
            "Shutting down",
            "the service is draining; send new requests to another replica",
            headers={"Retry-After": retry_after},
            extra={"ready": False},
        )
    if not getattr(request.app.state, "ready", False):
        return problem_response(
            503,
            "model_not_ready",
            "Not ready",
            "model loading or warming up",
            headers={"Retry-After": "5"},
            extra={"ready": False},
        )
    return None


@router.get("/health/live", summary="The process is up", response_model=Liveness)
@router.get("/v2/health/live", summary="OIP liveness", response_model=Liveness)
async def live() -> dict[str, Any]:
    return {"status": "alive", "live": True}


@router.get(
    "/health/ready",
    summary="Model loaded, every batch bucket warmed up, not draining",
    response_model=Readiness,
    responses=READY_RESPONSES,
)
@router.get("/v2/health/ready", summary="OIP readiness", response_model=Readiness, responses=READY_RESPONSES)
async def ready(request: Request) -> Response:
    return _not_ready(request) or JSONResponse({"status": "ready", "ready": True})


def _tensor(name: str, shape: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": [d if isinstance(d, int) else -1 for d in shape]}


@router.get("/v2/models/{name}", summary="OIP model metadata", responses=MODEL_RESPONSES)
async def model_metadata(
    name: Annotated[str, Depends(known_model)], service: Annotated[InferenceService, Depends(get_service)]
) -> Response:
    bundle = service.bundle
    graph = bundle.metadata.graphs["image_model"]
    body = {
        "name": bundle.name,
        "versions": [bundle.version],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor(n, s) for n, s in graph.get("inputs", {}).items()],
        "outputs": [_tensor(n, s) for n, s in graph.get("outputs", {}).items()],
        "parameters": {
            "sha256": bundle.sha256,
            "provider": service.runner.provider,
            "pathology": list(bundle.pathology_names),
            "findings_reported": list(bundle.findings_reported),
            "anatomy": list(bundle.anatomy_names),
            "structures": list(bundle.structures),
            "free_text_findings": bundle.text_encoder is not None,
            "intended_use": bundle.metadata.intended_use or "research only",
        },
    }
    return JSONResponse(body)


@router.get(
    "/v2/models/{name}/ready",
    summary="OIP model readiness",
    response_model=ModelReadiness,
    responses=MODEL_RESPONSES,
)
async def model_ready(name: Annotated[str, Depends(known_model)], request: Request) -> Response:
    return _not_ready(request) or JSONResponse({"name": name, "ready": True})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(registry: Annotated[ServiceMetrics, Depends(get_metrics)]) -> Response:
    return Response(registry.exposition(), media_type=METRICS_CONTENT_TYPE)
