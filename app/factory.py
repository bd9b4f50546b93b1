"""`create_app(settings)`: the FastAPI application and its model lifecycle (lifespan).

Start-up reads and verifies the bundle synchronously (a broken bundle fails the start), then builds
the ONNX Runtime session and warms up every batch bucket in the background: /health/live answers at
once, /health/ready and the inference routes answer 503 until warm-up is done. `drain_app` is the
SIGTERM drain (app/drain.py); shutdown then empties the batching queue before the worker pool goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from app.api_docs import install_docs
from app.blas import limit_blas_threads
from app.budgets import ByteBudget
from app.contract.bundle import Bundle, load_bundle, resolve_default_bundle
from app.contract.imaging import quiet_pydicom_value_messages
from app.decode_pool import PoolDecoder, decodes_without_gil
from app.drain import InFlight, run_drain
from app.memory import release_free_memory
from app.metrics import ServiceMetrics
from app.middleware import BodyLimits, RequestContextMiddleware
from app.problems import install_problem_handlers
from app.routes import inference, operations
from app.runtime import ImageModelRunner, warm_up
from app.runtime_choice import build_runner
from app.service import InferenceService
from app.settings import Settings
from app.textquery import TextQueryEncoder
from app.viewer import install_viewer

logger = logging.getLogger(__name__)

RunnerFactory = Callable[[Bundle, Settings], ImageModelRunner]

DESCRIPTION = (
    "MeDSLIP chest X-ray inference: finding scores, anatomy-localised heatmaps and masks from DICOM, PNG "
    "or JPEG. Research software, NOT a medical device. Errors are RFC 9457 problem+json with a stable "
    "`code`."
)


def default_runner(bundle: Bundle, settings: Settings) -> ImageModelRunner:
    """The configured runtime (`build_runner`): OpenVINO on the CPU, or ONNX Runtime on the configured
    device."""
    return build_runner(
        bundle,
        runtime=settings.runtime,
        device=settings.device,
        precision=settings.precision,
        threads=settings.intra_op_threads,
        io_binding=settings.io_binding,
        allow_spinning=settings.ort_spinning,
    )


def bundle_dir(settings: Settings) -> Path:
    """The configured bundle directory, or the default one resolved in the model store."""
    if settings.model_dir is not None:
        return settings.model_dir
    return resolve_default_bundle(settings.model_store, settings.model_name, settings.model_version)


async def _bring_up(
    app: FastAPI,
    bundle: Bundle,
    settings: Settings,
    runner_factory: RunnerFactory,
    executors: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
    *,
    decoder: PoolDecoder,
) -> None:
    """Build runtime + text encoder, start the decode processes, warm every bucket, start the batcher,
    then mark ready."""
    metrics: ServiceMetrics = app.state.metrics
    try:
        runner = await asyncio.to_thread(runner_factory, bundle, settings)
        text_encoder = None
        if bundle.text_encoder is not None:
            text_encoder = await asyncio.to_thread(
                TextQueryEncoder,
                bundle.text_encoder,
                cache_size=settings.text_cache_size,
                intra_op_threads=settings.intra_op_threads,
            )
        limit_blas_threads()  # pieces run side by side in the worker pool, one BLAS thread each
        await asyncio.to_thread(decoder.start)
        warm_ms = await asyncio.to_thread(warm_up, runner, bundle, settings.effective_buckets())
        await asyncio.to_thread(release_free_memory)  # the warm-up's freed buffers are not held
        service = InferenceService(
            bundle,
            runner,
            text_encoder=text_encoder,
            settings=settings,
            metrics=metrics,
            executor=executors[0],
            model_executor=executors[1],
            decoder=decoder,
            batch_seconds={size: ms / 1000.0 for size, ms in warm_ms.items()},
        )
        service.batcher.start()
        app.state.service = service
        metrics.model_info.info(
            {
                "name": bundle.name,
                "version": bundle.version,
                "sha256": bundle.sha256,
                "provider": runner.provider,
            }
        )
        metrics.model_ready.set(1)
        app.state.ready = True
        logger.info(
            "ready", extra={"model": bundle.name, "version": bundle.version, "provider": runner.provider}
        )
    except Exception as exc:
        app.state.load_error = type(exc).__name__
        logger.error("model bring-up failed", extra={"error_type": type(exc).__name__, "error": str(exc)})


def create_app(settings: Settings, *, runner_factory: RunnerFactory | None = None) -> FastAPI:
    """Build the app; `runner_factory` lets tests replace ONNX Runtime with a double."""
    factory = runner_factory or default_runner

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        quiet_pydicom_value_messages()  # pydicom would quote header values (UIDs, names) in warnings
        bundle = await asyncio.to_thread(load_bundle, bundle_dir(settings), verify=settings.verify_checksums)
        app.state.model_name = bundle.name
        # Why two pools: model calls never wait behind a queue of decodes, and decodes of the next
        # batch overlap the current model call.
        executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="medslip-worker")
        model_executor = ThreadPoolExecutor(1, thread_name_prefix="medslip-model")
        decoder = PoolDecoder(
            settings.decode_processes,
            log_format=settings.log_format,
            log_level=settings.log_level,
            inline=decodes_without_gil if settings.decode_inline else None,
            j2k_threads=settings.j2k_threads,
        )
        bring_up = asyncio.create_task(
            _bring_up(app, bundle, settings, factory, (executor, model_executor), decoder=decoder)
        )
        try:
            yield
        finally:
            app.state.ready = False
            app.state.metrics.model_ready.set(0)
            if not bring_up.done():
                bring_up.cancel()
            service: InferenceService | None = app.state.service
            if service is not None:
                await service.batcher.close()
            executor.shutdown(wait=True, cancel_futures=True)
            model_executor.shutdown(wait=True, cancel_futures=True)
            await asyncio.to_thread(decoder.shutdown)
            logger.info("stopped")

    app = FastAPI(
        title="MeDSLIP inference service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.service = None
    app.state.ready = False
    app.state.load_error = None
    app.state.model_name = None
    app.state.in_flight = InFlight()
    install_problem_handlers(app)
    app.include_router(operations.router)
    app.include_router(inference.router)
    install_docs(app, settings)
    if settings.viewer:
        install_viewer(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        limits=BodyLimits(
            max_bytes=settings.max_upload_bytes,
            budget=ByteBudget(settings.max_buffered_bytes),
            timeout_s=settings.body_timeout_s,
            retry_after_s=settings.retry_after_s,
        ),
        in_flight=app.state.in_flight,
    )
    return app


async def drain_app(app: FastAPI) -> bool:
    """The SIGTERM drain: readiness 503 now, in-flight requests finish, queued ones 503 at the timeout."""
    settings: Settings = app.state.settings
    in_flight: InFlight = app.state.in_flight

    def abort_queued() -> int:
        service: InferenceService | None = app.state.service
        return service.batcher.abort() if service is not None else 0

    return await run_drain(in_flight, settings.drain_timeout_s, abort_queued)
