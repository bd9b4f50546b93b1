"""The one settings class of the inference service (environment variables `MEDSLIP_*`).

Why one class: an operator sees every knob in one place, each documented, and the app factory gets a
single immutable object (no module-level globals, tests build their own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.contract.locations import MODEL_STORE

#: Largest X-Deadline-Ms (and default deadline) accepted: ten minutes.
MAX_DEADLINE_MS = 600_000.0
#: Largest batch under OpenVINO unless `MEDSLIP_MAX_BATCH_SIZE` says otherwise. Why not 8 as under ONNX
#: Runtime: each compiled graph keeps the buffers of the largest batch it ran, so warming batch 8 put the
#: service over 1 GB, and batch 4 went over it under mixed load; batch 2 stayed under it and served as many
#: films per second under mixed load (docs/benchmarks.md, "OpenVINO").
OPENVINO_MAX_BATCH_SIZE = 2


class Settings(BaseSettings):
    """Inference-service configuration; every field is read from `MEDSLIP_<FIELD>` (lists as JSON)."""

    # env_ignore_empty: an empty variable means the default, so a compose file can pass one through
    # (`${MEDSLIP_MAX_BATCH_SIZE:-}`) without fixing its value.
    model_config = SettingsConfigDict(
        env_prefix="MEDSLIP_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    # --- model -----------------------------------------------------------------------------------
    model_dir: Path | None = Field(
        default=None,
        description="Bundle directory (model_store/<name>/<version>). None: resolve from model_store.",
    )
    model_store: Path = Field(
        default=MODEL_STORE, description="Root of the versioned model store."
    )
    model_name: str | None = Field(
        default=None, description="Model name inside model_store; None: the single image-model name present."
    )
    model_version: str | None = Field(
        default=None, description="Version to serve; None: the highest version."
    )
    verify_checksums: bool = Field(
        default=True, description="Check every bundle file against metadata.json sha256s."
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        default="auto",
        description="auto: CUDAExecutionProvider when onnxruntime offers it, else CPU; cuda: require it.",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="Inference threads per graph: ONNX Runtime intra-op threads or OpenVINO inference "
        "threads (0 = the runtime's default).",
    )
    runtime: Literal["onnxruntime", "openvino"] = Field(
        default="onnxruntime",
        description="Inference runtime. onnxruntime: ONNX Runtime on the configured device. openvino: "
        "OpenVINO on the CPU (the `openvino` package); where the CPU has native bf16 (AMX or AVX512-BF16) "
        "it computes the film-only layers in bf16 and the query layers in fp32 (precision auto = mixed): "
        "2-4.5x faster there, within the drift bounds in docs/benchmarks.md.",
    )
    precision: Literal["auto", "stored", "fp32", "mixed", "bf16", "int8"] = Field(
        default="auto",
        description="Graph precision: stored = as the bundle stores each graph; fp32 = fp32 compute (fp16 "
        "weights upcast in memory); mixed = bf16 for the layers that read only the film, fp32 for those that "
        "read the queries, and bf16 = bf16 throughout (OpenVINO only, on a CPU with native bf16); int8 = the "
        "bundle's int8 graph variants (ONNX Runtime; refused at start-up when it has none); auto = mixed "
        "under OpenVINO where native (else fp32), fp32 on the CPU under ONNX Runtime, stored on CUDA.",
    )
    io_binding: bool | None = Field(
        default=None,
        description="Run the graphs through ONNX Runtime IO binding (inputs from host memory, outputs on "
        "the device, copied back once per batch); None = on with CUDA only.",
    )

    # --- batching --------------------------------------------------------------------------------
    max_batch_size: int = Field(
        default=8,
        ge=1,
        le=256,
        description=f"Largest batch released to the model (default {OPENVINO_MAX_BATCH_SIZE} under OpenVINO, "
        "whose compiled graphs keep the buffers of the largest batch they ran).",
    )
    batch_buckets: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8],
        description="Batch sizes the model sees (zero-padded up to the next bucket); all warmed up.",
    )
    max_delay_ms: float = Field(
        default=5.0, ge=0.0, description="Longest the oldest queued request waits for others before release."
    )
    eager_release: bool = Field(
        default=True, description="Release a partial batch at once when no other request is being decoded."
    )
    max_queue_size: int = Field(
        default=64,
        ge=1,
        description="Queued plus decoding requests beyond this are refused with 503 queue_full.",
    )
    retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After seconds sent with 503 refusals (at least this many)."
    )
    latency_budget_ms: float = Field(
        default=2000.0,
        gt=0,
        description="Refuse with 503 latency_budget_exceeded when the expected wait for a model result "
        "(requests ahead plus its own batch, from the measured batch times) exceeds this.",
    )
    default_deadline_ms: float | None = Field(
        default=30000.0,
        gt=0,
        le=MAX_DEADLINE_MS,
        description="Deadline when a request sends no X-Deadline-Ms header (None = none).",
    )
    worker_threads: int = Field(
        default=4,
        ge=1,
        description="Thread pool for requests' decode stage (waiting on the decode processes), text "
        "encoding and postprocessing.",
    )
    decode_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Processes that decode and preprocess uploads, so codecs that hold the GIL never "
        "stall the event loop and the batcher; keep it below the core count. 0: decode in the worker "
        "threads.",
    )
    j2k_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Threads that decode one JPEG 2000 film (OpenJPEG, reduced-resolution path) in the "
        "decode processes and in medslip-serve itself; 0 = one per CPU the process may use.",
    )
    ort_spinning: bool = Field(
        default=False,
        description="Let ONNX Runtime's idle intra-op threads spin-wait between runs. Off: each graph "
        "has its own thread pool, and spinning threads of one graph slow the other on the same cores.",
    )
    decode_inline: bool = Field(
        default=True,
        description="Decode PNG, JPEG and uncompressed DICOM in the worker threads (their decoders "
        "release the GIL), skipping the hop to the decode processes; other codecs still go there.",
    )
    reduced_decode: bool = Field(
        default=True,
        description="Decode JPEG 2000 and JPEG at a power-of-two reduced resolution (long side kept at "
        "least 2x the model input) where the codec allows it; results stay in original coordinates.",
    )

    # --- limits ----------------------------------------------------------------------------------
    max_upload_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Request body limit (while streaming)."
    )
    max_pixels: int = Field(
        default=50_000_000, ge=1, description="Largest rows*columns accepted, checked before decoding."
    )
    max_buffered_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Request body bytes held at once by all requests; beyond it 503 upload_budget_exceeded.",
    )
    max_decode_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="Estimated decoding memory (rows*columns*14 bytes) in flight at once; beyond it 503 "
        "decode_budget_exceeded. One image is always admitted alone.",
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="The whole request body must arrive within this; else 408."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="medslip-serve: request headers must arrive within this after a connection or request "
        "starts; else 408 and the connection is closed.",
    )
    allow_lateral: bool = Field(
        default=False, description="Accept lateral views without the request's allow_lateral."
    )
    max_custom_findings: int = Field(default=16, ge=0, description="Free-text findings allowed per request.")
    max_finding_text_chars: int = Field(default=200, ge=1, description="Longest free-text finding accepted.")
    text_cache_size: int = Field(default=1024, ge=0, description="LRU size of encoded free-text findings.")
    anatomy_top_k: int = Field(default=5, ge=1, description="Anatomical regions listed per grounded finding.")

    # --- security and operations -----------------------------------------------------------------
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="If non-empty, inference routes need X-API-Key or Bearer with one."
    )
    viewer: bool = Field(
        default=True,
        description="Serve the built-in web viewer at / (a static page that calls the public API with the "
        "same keys and limits; stores no image); false: / answers 404.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per log line."
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0.0,
        description="On SIGTERM: readiness 503 at once, in-flight requests get this long to finish; "
        "requests still queued then get 503 shutting_down.",
    )
    host: str = Field(default="127.0.0.1", description="Bind address of medslip-serve.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of medslip-serve.")

    @field_validator("batch_buckets")
    @classmethod
    def _sorted_positive(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("batch_buckets must be non-empty positive integers")
        return sorted(set(value))

    @model_validator(mode="after")
    def _openvino_batch(self) -> Settings:
        if self.runtime == "openvino" and "max_batch_size" not in self.model_fields_set:
            object.__setattr__(self, "max_batch_size", OPENVINO_MAX_BATCH_SIZE)
        return self

    @model_validator(mode="after")
    def _buckets_cover_batch(self) -> Settings:
        if self.batch_buckets[-1] < self.max_batch_size:
            # Why: a released batch must fit a warmed-up shape; extend rather than refuse.
            object.__setattr__(self, "batch_buckets", [*self.batch_buckets, self.max_batch_size])
        return self

    def effective_buckets(self) -> list[int]:
        """Buckets below max_batch_size plus max_batch_size itself: warm-up never runs unused shapes."""
        kept = [b for b in self.batch_buckets if b < self.max_batch_size]
        return [*kept, self.max_batch_size]
