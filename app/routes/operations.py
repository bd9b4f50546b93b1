"""Health (plain and Open Inference Protocol v2), model metadata and Prometheus metrics; never behind auth."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.dependencies import get_metrics, get_service
from app.errors import problem_response
from app.metrics import METRICS_CONTENT_TYPE, ServiceMetrics
from app.service import InferenceService

router = APIRouter(tags=["operations"])


def _ready(request: Request) -> bool:
    return bool(getattr(request.app.state, "ready", False))


@router.get("/health/live", summary="The process is up")
@router.get("/v2/health/live", summary="OIP liveness")
async def live() -> dict[str, Any]:
    return {"status": "alive", "live": True}


@router.get("/health/ready", summary="Model loaded and every batch bucket warmed up")
@router.get("/v2/health/ready", summary="OIP readiness")
async def ready(request: Request) -> Response:
    if _ready(request):
        return JSONResponse({"status": "ready", "ready": True})
    return problem_response(
        503,
        "model_not_ready",
        "Not ready",
        "model loading or warming up",
        headers={"Retry-After": "5"},
        extra={"ready": False},
    )


def _tensor(name: str, shape: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": [d if isinstance(d, int) else -1 for d in shape]}


@router.get("/v2/models/{name}", summary="OIP model metadata")
async def model_metadata(name: str, service: Annotated[InferenceService, Depends(get_service)]) -> Response:
    bundle = service.bundle
    if name != bundle.name:
        return problem_response(404, "unknown_model", "Unknown model", "no model by that name is served")
    graph = bundle.metadata["graphs"]["image_model"]
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
            "intended_use": bundle.metadata.get("intended_use", "research only"),
        },
    }
    return JSONResponse(body)


@router.get("/v2/models/{name}/ready", summary="OIP model readiness")
async def model_ready(name: str, request: Request) -> Response:
    service: InferenceService | None = getattr(request.app.state, "service", None)
    if service is None or not _ready(request) or name != service.bundle.name:
        return problem_response(503, "model_not_ready", "Not ready", "model not loaded or unknown")
    return JSONResponse({"name": name, "ready": True})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: Annotated[ServiceMetrics, Depends(get_metrics)]) -> Response:
    return Response(registry.exposition(), media_type=METRICS_CONTENT_TYPE)
