"""The inference pipeline behind the routes: decode -> (text) -> batch -> postprocess -> response dict.

Why a class apart from the routes: routes stay thin (HTTP in, JSON out) and this is testable with a
test-double runner. CPU-heavy steps run in the worker pool so the event loop keeps accepting.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from app.batching import Batcher, bucket_size, pad_batch
from app.budgets import ByteBudget, estimated_decode_bytes
from app.contract.bundle import Bundle
from app.contract.graphs import ENDPOINT_OUTPUTS
from app.decode_pool import DecodeRequest, ModelInput, PoolDecoder
from app.errors import (
    DecodeBudgetExceededError,
    InvalidParameterError,
    TextEncoderUnavailableError,
    UnknownNameError,
)
from app.metrics import ServiceMetrics
from app.postprocess import finding_mask, grounding, mask_payload, segmentation_mask
from app.request_types import BatchItem, FindingRef, Inference, RequestOptions
from app.runtime import ImageModelRunner, ModelOutputs
from app.settings import Settings
from app.textquery import TextQueryEncoder

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _required(value: np.ndarray | None, name: str) -> np.ndarray:
    """An output the endpoint's graph choice guarantees; its absence is a bug, not a client error."""
    if value is None:
        raise RuntimeError(f"model output {name} was not computed for this request")
    return value


def _normalise_name(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


class InferenceService:
    """Owns the batcher and the per-request pipeline for one loaded bundle."""

    def __init__(
        self,
        bundle: Bundle,
        runner: ImageModelRunner,
        *,
        text_encoder: TextQueryEncoder | None,
        settings: Settings,
        metrics: ServiceMetrics,
        executor: ThreadPoolExecutor,
        model_executor: ThreadPoolExecutor,
        decoder: PoolDecoder,
        batch_seconds: Mapping[int, float] | None = None,
    ) -> None:
        """`batch_seconds`: measured seconds per batch bucket (warm-up) to seed the wait estimate;
        `decoder` decodes in its processes (or in the worker thread that calls it)."""
        self.bundle = bundle
        self.runner = runner
        self.text_encoder = text_encoder
        self._settings = settings
        self._metrics = metrics
        self._executor = executor
        self._decoder = decoder
        self._buckets = settings.effective_buckets()
        self._pathology_index = {n: i for i, n in enumerate(bundle.pathology_names)}
        # Fewest pixels a reduced-resolution decode may leave on the long side (None: full size).
        self._decode_long_side = bundle.preprocessing.decode_long_side if settings.reduced_decode else None
        self.decode_budget = ByteBudget(settings.max_decode_bytes)
        self.batcher: Batcher[BatchItem, ModelOutputs] = Batcher(
            self._run_batch,
            executor=model_executor,
            metrics=metrics,
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_delay_ms / 1000.0,
            max_queue_size=settings.max_queue_size,
            retry_after_s=settings.retry_after_s,
            eager=settings.eager_release,
            latency_budget_s=settings.latency_budget_ms / 1000.0,
            buckets=self._buckets,
            batch_seconds=batch_seconds,
        )

    # --- the batch function (worker thread) -----------------------------------------------------
    def _run_batch(self, items: list[BatchItem]) -> list[ModelOutputs]:
        """Stack, pad to a bucket, append every item's custom queries to the book, run the cheapest graph
        with every output the batch's endpoints read, split per item."""
        images = np.stack([item.image for item in items])  # (n, 3, S, S)
        padded = pad_batch(images, bucket_size(len(items), self._buckets))  # (bucket, 3, S, S)
        customs = [item.custom_queries for item in items]
        queries = np.concatenate([self.bundle.pathology_queries, *customs], axis=0)  # (Qp + sum Qc, T)
        needed = frozenset().union(*(item.outputs for item in items))
        out = self.runner.run(padded, queries, self.bundle.anatomy_queries, outputs=needed)
        book = self.bundle.pathology_queries.shape[0]
        results: list[ModelOutputs] = []
        offset = book
        for i, custom in enumerate(customs):
            rows = np.r_[0:book, offset : offset + custom.shape[0]]
            offset += custom.shape[0]
            results.append(out.item(i, rows))
        return results

    # --- request parsing ------------------------------------------------------------------------
    def resolve_findings(self, requested: tuple[str, ...]) -> list[FindingRef]:
        """Map requested names to built-in queries; anything else is free text for the text encoder."""
        names = requested or self.bundle.findings_reported
        refs: list[FindingRef] = []
        custom_count = 0
        for raw in dict.fromkeys(names):
            key = _normalise_name(raw)
            if key in self._pathology_index:
                refs.append(FindingRef(key, self._pathology_index[key], self.bundle.threshold_for(key),
                                       calibrated=key in self.bundle.thresholds))
                continue
            text = raw.strip()
            if not text:
                raise InvalidParameterError("an empty finding name was given")
            if len(text) > self._settings.max_finding_text_chars:
                raise InvalidParameterError(
                    f"free-text finding longer than {self._settings.max_finding_text_chars} characters"
                )
            if self.text_encoder is None:
                raise TextEncoderUnavailableError(
                    "this bundle has no text encoder; use built-in finding names (see /v2/models/{name})"
                )
            custom_count += 1
            if custom_count > self._settings.max_custom_findings:
                raise InvalidParameterError(
                    f"at most {self._settings.max_custom_findings} free-text findings"
                )
            refs.append(FindingRef(text, None, self.bundle.default_threshold))
        return refs

    def resolve_structures(self, requested: tuple[str, ...]) -> list[tuple[str, int]]:
        """Validate anatomy structure names against the segmentation head's structures."""
        index = {n: i for i, n in enumerate(self.bundle.structures)}
        resolved: list[tuple[str, int]] = []
        for raw in dict.fromkeys(requested):
            key = _normalise_name(raw)
            if key not in index:
                raise UnknownNameError(
                    f"unknown anatomy structure; known: {', '.join(self.bundle.structures)}"
                )
            resolved.append((key, index[key]))
        return resolved

    # --- pipeline -------------------------------------------------------------------------------
    async def _in_pool(self, stage: str, fn: Callable[[], T]) -> tuple[T, float]:
        """Run `fn` in the worker pool with this request's context (its request id reaches the logs)."""
        start = time.perf_counter()
        context = contextvars.copy_context()
        result = await asyncio.get_running_loop().run_in_executor(self._executor, context.run, fn)
        return result, self._observe(stage, start)

    async def _in_pool_each(self, stage: str, fns: Sequence[Callable[[], T]]) -> tuple[list[T], float]:
        """Run the independent pieces of one stage side by side in the worker pool, results in order.

        Why: a `/ground` answer is one full-resolution heat map per finding, each resized and quantised
        by numpy with the GIL released, so the pieces use every core instead of one; only the deflate
        (ISA-L, about 1.4 ms per megapixel) holds the GIL (docs/benchmarks.md, "Postprocessing")."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self._executor, contextvars.copy_context().run, fn) for fn in fns)
        )
        return list(results), self._observe(stage, start)

    def _observe(self, stage: str, start: float) -> float:
        """Record a stage's duration since `start` (perf_counter) in the metrics; returns it in ms."""
        elapsed = time.perf_counter() - start
        self._metrics.stage_duration.labels(stage=stage).observe(elapsed)
        return elapsed * 1000.0

    def _decode(
        self, data: bytes, media_type: str | None, allow_lateral: bool, render: bool = False
    ) -> ModelInput:
        """Decode + preprocess inside the decode-memory budget (worker thread, waiting on a decode
        process unless MEDSLIP_DECODE_PROCESSES=0); only the model input comes back."""
        cost = estimated_decode_bytes(data)
        if not self.decode_budget.try_acquire(cost):
            raise DecodeBudgetExceededError(
                "other images are being decoded; this one would exceed the decoding memory budget",
                retry_after_s=self._settings.retry_after_s,
            )
        self._metrics.budget_in_use.labels(budget="decode").set(self.decode_budget.in_use)
        try:
            result = self._decoder.decode(
                DecodeRequest(
                    data,
                    media_type,
                    max_pixels=self._settings.max_pixels,
                    allow_lateral=allow_lateral or self._settings.allow_lateral,
                    min_long_side=self._decode_long_side,
                    spec=self.bundle.preprocessing,
                    render=render,
                )
            )  # tensor (3, S, S); box: letterbox of the ORIGINAL rows x columns
            info = result.info
            self._metrics.record_input(info.format, info.transfer_syntax, info.photometric)
        finally:
            self.decode_budget.release(cost)
            self._metrics.budget_in_use.labels(budget="decode").set(self.decode_budget.in_use)
        return result

    async def _custom_queries(self, findings: list[FindingRef]) -> tuple[np.ndarray, float]:
        """(Qc, T) embeddings of the free-text findings (worker thread), or an empty (0, T) at no cost."""
        texts = [f.name for f in findings if f.custom]
        encoder = self.text_encoder
        if not texts or encoder is None:
            return np.zeros((0, self.bundle.pathology_queries.shape[1]), dtype=np.float32), 0.0
        return await self._in_pool("text", lambda: encoder.encode(texts))

    async def infer(
        self,
        data: bytes,
        media_type: str | None,
        options: RequestOptions,
        findings: list[FindingRef],
        endpoint: str = "segment",
    ) -> Inference:
        """Decode, queue for a batch and wait; raises ImagingError / ServiceError subclasses. `endpoint`
        says which outputs the caller reads (`ENDPOINT_OUTPUTS`), hence which graph may serve it."""
        async with self.batcher.admit(options.priority):  # may refuse with 503 before any decode work
            decoded, decode_ms = await self._in_pool(
                "decode", lambda: self._decode(data, media_type, options.allow_lateral, options.input_image)
            )
            custom, text_ms = await self._custom_queries(findings)
        result = await self.batcher.submit(
            BatchItem(decoded.tensor, custom, ENDPOINT_OUTPUTS[endpoint]),
            priority=options.priority,
            deadline=options.deadline,
        )
        timing = {
            "queue": result.queue_s * 1000.0,
            "decode": decode_ms + text_ms,
            "infer": result.infer_s * 1000.0,
            "post": 0.0,
        }
        return Inference(
            decoded.info, decoded.box, result.value, findings, timing, result.batch_size, decoded.rendered
        )

    def _scores(self, inference: Inference) -> list[tuple[int, dict[str, Any]]]:
        """(output row, finding entry) per requested finding; custom rows follow the built-in book."""
        # One clip and one conversion for the whole vector: per-finding numpy scalar calls cost more
        # than the rest of the scoring together on the event loop.
        probs = np.clip(inference.outputs.pathology_probs, 0.0, 1.0).tolist()  # (Q,) Python floats
        custom_row = self.bundle.pathology_queries.shape[0]
        scored: list[tuple[int, dict[str, Any]]] = []
        for ref in inference.findings:
            if ref.index is None:
                row, custom_row = custom_row, custom_row + 1
            else:
                row = ref.index
            score = probs[row]
            entry = {
                "name": ref.name,
                "score": round(score, 6),
                "threshold": ref.threshold,
                "positive": score >= ref.threshold,
                "calibrated": ref.calibrated,
                "custom": ref.custom,
            }
            scored.append((row, entry))
        return scored

    def _grounded(self, inference: Inference, row: int, entry: dict[str, Any]) -> dict[str, Any]:
        """One finding's entry with its heat map, peak, box and regions (a worker-pool piece)."""
        out = inference.outputs
        entry.update(
            grounding(
                _required(out.pathology_maps, "pathology_maps")[row],
                inference.box,
                anatomy_maps=_required(out.anatomy_maps, "anatomy_maps"),
                anatomy_probs=_required(out.anatomy_probs, "anatomy_probs"),
                anatomy_names=self.bundle.anatomy_names,
                top_k=self._settings.anatomy_top_k,
            )
        )
        return entry

    def _mask_pieces(
        self, inference: Inference, structures: list[tuple[str, int]], rle: bool
    ) -> list[Callable[[], dict[str, Any]]]:
        """One worker-pool piece per mask: the requested findings' thresholded maps, then the
        segmentation head's structures."""
        out = inference.outputs
        box = inference.box

        def finding(name: str, grid_map: np.ndarray) -> dict[str, Any]:
            return mask_payload(name, "finding", finding_mask(grid_map, box), with_rle=rle)

        def structure(name: str, logits: np.ndarray) -> dict[str, Any]:
            mask = segmentation_mask(logits, box, self.bundle.segmentation_threshold)
            return mask_payload(name, "anatomy", mask, with_rle=rle)

        pieces: list[Callable[[], dict[str, Any]]] = []
        if inference.findings:
            maps = _required(out.pathology_maps, "pathology_maps")
            pieces += [functools.partial(finding, e["name"], maps[row]) for row, e in self._scores(inference)]
        if structures:
            logits = _required(out.segmentation_logits, "segmentation_logits")
            pieces += [functools.partial(structure, name, logits[k]) for name, k in structures]
        return pieces

    def envelope(self, inference: Inference, post_ms: float) -> dict[str, Any]:
        """The fields every response carries: model, input, timing_ms, batch_size."""
        info = inference.info
        timing = dict(inference.timing_ms, post=post_ms)
        rendered = inference.rendered
        image = None if rendered is None else {
            "png_base64": rendered.png_base64, "width": rendered.width, "height": rendered.height
        }
        return {
            "model": {
                "name": self.bundle.name,
                "version": self.bundle.version,
                "sha256": self.bundle.sha256,
                "provider": self.runner.provider,
            },
            "input": {
                "format": info.format,
                "rows": info.rows,
                "columns": info.columns,
                "photometric": info.photometric,
                "view_position": info.view_position,
                "transfer_syntax": info.transfer_syntax,
                "transfer_syntax_name": getattr(info, "transfer_syntax_name", None),
                "steps": list(info.steps),
                "warnings": list(info.warnings),
                "image": image,
            },
            "timing_ms": {k: round(v, 3) for k, v in timing.items()},
            "batch_size": inference.batch_size,
        }

    async def classify(self, data: bytes, media_type: str | None, options: RequestOptions) -> dict[str, Any]:
        inference = await self.infer(
            data, media_type, options, self.resolve_findings(options.findings), endpoint="classify"
        )
        start = time.perf_counter()  # scores only: cheaper inline than a thread hop
        findings = [entry for _, entry in self._scores(inference)]
        return {"findings": findings, **self.envelope(inference, self._observe("post", start))}

    async def ground(self, data: bytes, media_type: str | None, options: RequestOptions) -> dict[str, Any]:
        inference = await self.infer(
            data, media_type, options, self.resolve_findings(options.findings), endpoint="ground"
        )
        scored = self._scores(inference)
        pieces = [functools.partial(self._grounded, inference, row, entry) for row, entry in scored]
        findings, post_ms = await self._in_pool_each("post", pieces)
        return {"findings": findings, **self.envelope(inference, post_ms)}

    async def segment(self, data: bytes, media_type: str | None, options: RequestOptions) -> dict[str, Any]:
        structures = self.resolve_structures(options.anatomy)
        findings = self.resolve_findings(options.findings) if options.findings else []
        if not structures and not findings:
            raise InvalidParameterError("ask for at least one `anatomy` structure or `findings` name")
        inference = await self.infer(data, media_type, options, findings, endpoint="segment")
        pieces = self._mask_pieces(inference, structures, options.rle)
        masks, post_ms = await self._in_pool_each("post", pieces)
        return {"masks": masks, **self.envelope(inference, post_ms)}
