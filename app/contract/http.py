"""Response models of the HTTP API. Field names are a contract: extend, never rename."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelRef(BaseModel):
    name: str = Field(examples=["medslip-cxr"])
    version: str = Field(examples=["1.0.0"])
    sha256: str = Field(description="sha256 of image_model.onnx")
    provider: str = Field(
        description="What ran the model: an ONNX Runtime execution provider (CPUExecutionProvider, "
        "CUDAExecutionProvider) or OpenVINO-CPU-<precision> (bf16 or fp32)"
    )


class InputImage(BaseModel):
    """The decoded film as the model saw it before the letterbox, for display (`input_image=true`)."""

    png_base64: str = Field(
        description="8-bit gray PNG after the modality LUT, VOI window, MONOCHROME1 inversion and the "
        "washed-out stretch; 0 = black. At a reduced resolution where the codec decoded one: draw it "
        "scaled to columns x rows, the coordinates of every heatmap, peak, box and mask"
    )
    width: int
    height: int


class InputInfo(BaseModel):
    format: str = Field(examples=["dicom"])
    rows: int
    columns: int
    photometric: str = Field(examples=["MONOCHROME2"])
    view_position: str | None = Field(None, examples=["PA"])
    transfer_syntax: str | None = Field(None, description="Transfer syntax UID (DICOM only)")
    transfer_syntax_name: str | None = None
    steps: list[str] = Field(default_factory=list, description="Every pixel and preprocessing step applied")
    warnings: list[str] = Field(default_factory=list)
    image: InputImage | None = Field(None, description="Only with input_image=true")


class Timing(BaseModel):
    queue: float = Field(description="ms waiting in the batching queue")
    decode: float = Field(description="ms decoding and preprocessing (and encoding free-text findings)")
    infer: float = Field(description="ms of the batch's model call")
    post: float = Field(description="ms postprocessing (maps, masks, PNG encoding)")


class ResponseBase(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: ModelRef
    input: InputInfo
    timing_ms: Timing
    batch_size: int = Field(description="Real requests in the batch this one ran in")
    request_id: str | None = None


class FindingScore(BaseModel):
    name: str = Field(examples=["effusion"])
    score: float = Field(ge=0.0, le=1.0)
    threshold: float
    positive: bool
    calibrated: bool = Field(
        description="True when threshold is this finding's operating point validated on held-out data "
        "(see the model card); False when it is the bundle's uncalibrated default"
    )
    custom: bool = Field(description="True for a free-text finding scored through the text encoder")


_ENVELOPE_EXAMPLE: dict[str, Any] = {
    "model": {
        "name": "medslip-cxr",
        "version": "1.0.0",
        "sha256": "3f1c...e9",
        "provider": "CPUExecutionProvider",
    },
    "input": {
        "format": "dicom",
        "rows": 2048,
        "columns": 2500,
        "photometric": "MONOCHROME1",
        "view_position": "PA",
        "transfer_syntax": "1.2.840.10008.1.2.4.90",
        "transfer_syntax_name": "JPEG 2000 Image Compression (Lossless Only)",
        "steps": [
            "modality LUT",
            "VOI window",
            "invert MONOCHROME1",
            "letterbox to 224",
            "imagenet normalise",
        ],
        "warnings": [],
    },
    "timing_ms": {"queue": 1.2, "decode": 38.5, "infer": 61.0, "post": 0.2},
    "batch_size": 3,
    "request_id": "5b0c6f3e2a5d4e0f9d1c2b3a4f5e6d7c",
}


class ClassifyResponse(ResponseBase):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "findings": [
                        {
                            "name": "effusion",
                            "score": 0.81,
                            "threshold": 0.5,
                            "positive": True,
                            "calibrated": False,
                            "custom": False,
                        },
                        {
                            "name": "patchy opacity in the left lower lobe",
                            "score": 0.34,
                            "threshold": 0.5,
                            "positive": False,
                            "calibrated": False,
                            "custom": True,
                        },
                    ],
                    **_ENVELOPE_EXAMPLE,
                }
            ]
        },
    )

    findings: list[FindingScore]


class Heatmap(BaseModel):
    png_base64: str = Field(description="8-bit gray PNG (64 levels), original image size, 255 = strongest")
    width: int
    height: int


class Point(BaseModel):
    x: int
    y: int


class AnatomyScore(BaseModel):
    name: str = Field(examples=["right_lower_lung"])
    score: float


class GroundedFinding(FindingScore):
    heatmap: Heatmap
    peak: Point
    box: list[int] | None = Field(description="[x0, y0, x1, y1], x1/y1 exclusive, original pixels")
    anatomy: list[AnatomyScore] = Field(description="Regions where the finding lies, best first")


class GroundResponse(ResponseBase):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "findings": [
                        {
                            "name": "effusion",
                            "score": 0.81,
                            "threshold": 0.5,
                            "positive": True,
                            "calibrated": False,
                            "custom": False,
                            "heatmap": {"png_base64": "iVBORw0KGgo...", "width": 2500, "height": 2048},
                            "peak": {"x": 1890, "y": 1610},
                            "box": [1650, 1400, 2210, 1820],
                            "anatomy": [
                                {"name": "left_costophrenic", "score": 0.41},
                                {"name": "left_lower_lung", "score": 0.37},
                            ],
                        }
                    ],
                    **_ENVELOPE_EXAMPLE,
                }
            ]
        },
    )

    findings: list[GroundedFinding]


class Rle(BaseModel):
    size: list[int] = Field(description="[height, width]")
    counts: list[int] = Field(description="Uncompressed COCO RLE, column-major, starting with zeros")


class Mask(BaseModel):
    name: str
    kind: Literal["finding", "anatomy"]
    png_base64: str
    width: int
    height: int
    area_fraction: float
    box: list[int] | None
    rle: Rle | None = None


class SegmentResponse(ResponseBase):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "masks": [
                        {
                            "name": "left_lung",
                            "kind": "anatomy",
                            "png_base64": "iVBORw0KGgo...",
                            "width": 2500,
                            "height": 2048,
                            "area_fraction": 0.142,
                            "box": [1320, 310, 2240, 1790],
                            "rle": {"size": [2048, 2500], "counts": [640000, 312, 1736]},
                        }
                    ],
                    **_ENVELOPE_EXAMPLE,
                }
            ]
        },
    )

    masks: list[Mask]


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code` (validation problems add `errors`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(examples=["invalid_dicom"])
    request_id: str | None = None
    instance: str | None = None


#: What each problem status means, with the stable `code`s that come with it.
PROBLEM_STATUSES: dict[int, str] = {
    400: "missing_file, malformed_multipart, invalid_parameter",
    401: "unauthorized (API keys are configured and none valid was sent)",
    404: "unknown_model",
    408: "request_timeout (the body arrived too slowly)",
    413: "payload_too_large, image_too_large",
    415: "unsupported_media_type",
    422: "invalid_request (parameter validation), invalid_dicom, unsupported_transfer_syntax, "
    "unsupported_view, multi_frame, not_an_image, unsupported_photometric, corrupt_image, not_chest, "
    "image_too_small, unknown_name, text_encoder_unavailable",
    500: "inference_failed, internal_error",
    503: "queue_full, latency_budget_exceeded, upload_budget_exceeded, decode_budget_exceeded, "
    "model_not_ready, shutting_down; all with Retry-After",
    504: "deadline_exceeded",
}

#: Statuses of the inference routes (/classify, /ground, /segment) besides 200.
INFERENCE_STATUSES = (400, 401, 408, 413, 415, 422, 500, 503, 504)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem+json answers with these statuses."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": PROBLEM_STATUSES[status],
        }
        for status in statuses
    }


class Liveness(BaseModel):
    status: Literal["alive"]
    live: bool


class Readiness(BaseModel):
    status: Literal["ready"]
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """GET /v2/models/{name} (Open Inference Protocol model metadata) as the service sends it."""

    name: str
    versions: list[str] = Field(description="Served version first")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)
