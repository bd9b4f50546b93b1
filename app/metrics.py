"""Every Prometheus metric of the service, on a per-app CollectorRegistry.

Why per-app: tests create many apps in one process; a global registry would double-register and leak
counts between them. Names follow Prometheus conventions (`_seconds`, `_total`) so
`promtool check metrics` passes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Transfer syntaxes reported by name; anything else is counted as "other" (bounded label values).
TRANSFER_SYNTAX_NAMES: dict[str, str] = {
    "1.2.840.10008.1.2": "implicit_vr_le",
    "1.2.840.10008.1.2.1": "explicit_vr_le",
    "1.2.840.10008.1.2.2": "explicit_vr_be",
    "1.2.840.10008.1.2.1.99": "deflated_explicit_vr_le",
    "1.2.840.10008.1.2.4.50": "jpeg_baseline",
    "1.2.840.10008.1.2.4.51": "jpeg_extended",
    "1.2.840.10008.1.2.4.57": "jpeg_lossless",
    "1.2.840.10008.1.2.4.70": "jpeg_lossless_sv1",
    "1.2.840.10008.1.2.4.80": "jpeg_ls_lossless",
    "1.2.840.10008.1.2.4.81": "jpeg_ls_near_lossless",
    "1.2.840.10008.1.2.4.90": "jpeg2000_lossless",
    "1.2.840.10008.1.2.4.91": "jpeg2000",
    "1.2.840.10008.1.2.5": "rle_lossless",
}
PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"})


class ServiceMetrics:
    """Holds the registry and every collector; pass one instance around, never import a global."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "medslip_http_request_duration_seconds",
            "HTTP request duration by endpoint and status class.",
            ["endpoint", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("medslip_http_requests_in_flight", "HTTP requests being handled.", registry=r)
        self.queue_wait = Histogram(
            "medslip_queue_wait_seconds",
            "Time a request waited in the batching queue.",
            ["priority"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "medslip_stage_duration_seconds",
            "Duration of a pipeline stage (decode, text, infer, post).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "medslip_batch_size",
            "Real (unpadded) requests per released batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batches = Counter(
            "medslip_batches_total",
            "Batches released, by reason (full, timeout, idle: nobody else incoming, drain).",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge("medslip_queue_depth", "Requests waiting in the batching queue.", registry=r)
        self.budget_in_use = Gauge(
            "medslip_budget_bytes_in_use",
            "Bytes held against a memory budget (buffered request bodies, estimated decoding memory).",
            ["budget"],
            registry=r,
        )
        self.rejections = Counter(
            "medslip_rejections_total", "Requests refused, by problem code.", ["reason"], registry=r
        )
        self.dicom_inputs = Counter(
            "medslip_dicom_inputs_total",
            "Decoded DICOM inputs by transfer syntax and photometric.",
            ["transfer_syntax", "photometric"],
            registry=r,
        )
        self.inputs = Counter("medslip_inputs_total", "Decoded inputs by format.", ["format"], registry=r)
        self.model_info = Info("medslip_model", "The served model bundle.", registry=r)
        self.model_ready = Gauge(
            "medslip_model_ready", "1 when the model is loaded and warmed up.", registry=r
        )

    # --- app.batching.BatchMetrics ----------------------------------------------------------------
    def batch_released(self, reason: str, size: int) -> None:
        self.batches.labels(reason=reason).inc()
        self.batch_size.observe(size)

    def queue_waited(self, priority: str, seconds: float) -> None:
        self.queue_wait.labels(priority=priority).observe(seconds)

    def batch_inferred(self, seconds: float) -> None:
        self.stage_duration.labels(stage="infer").observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def record_input(self, fmt: str, transfer_syntax: str | None, photometric: str | None) -> None:
        """Count a decoded input, mapping free-form header values onto bounded label sets."""
        self.inputs.labels(format=fmt).inc()
        if fmt == "dicom":
            syntax = TRANSFER_SYNTAX_NAMES.get(transfer_syntax or "", "other")
            photo = photometric if photometric in PHOTOMETRICS else "other"
            self.dicom_inputs.labels(transfer_syntax=syntax, photometric=photo).inc()

    def exposition(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)
