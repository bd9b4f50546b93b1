"""`medslip-serve [--host H] [--port P] [--model-dir DIR]`: run the inference service under uvicorn.

With no arguments it serves the default bundle in model_store/ (or MEDSLIP_MODEL_DIR). SIGTERM turns
readiness to 503 while still serving, lets in-flight requests finish (MEDSLIP_DRAIN_TIMEOUT_S), answers
503 shutting_down to those still queued, then stops (app/server.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from app.contract.bundle import BundleError
from app.contract.imaging.reduced import set_j2k_threads
from app.factory import bundle_dir, create_app, drain_app
from app.logging_setup import configure_logging
from app.server import FINAL_GRACE_S, DrainingServer, header_timeout_protocol
from app.settings import Settings

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medslip-serve", description=__doc__)
    parser.add_argument("--host", help="bind address (default MEDSLIP_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default MEDSLIP_PORT or 8000)")
    parser.add_argument("--model-dir", type=Path, help="bundle directory (default: newest in model_store/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in {"host": args.host, "port": args.port, "model_dir": args.model_dir}.items()
        if v is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    try:
        model_dir = bundle_dir(settings)
        if not (model_dir / "metadata.json").is_file():
            raise BundleError(f"{model_dir} is not a model bundle (no metadata.json)")
    except BundleError as exc:
        logger.error("no model bundle to serve", extra={"reason": str(exc)})
        sys.stderr.write(f"medslip-serve: {exc}\n")
        return 2
    settings = settings.model_copy(update={"model_dir": model_dir})
    set_j2k_threads(settings.j2k_threads)  # before any thread starts; decode processes get it too
    logger.info("starting", extra={"host": settings.host, "port": settings.port})
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=header_timeout_protocol(settings.header_timeout_s),
        log_config=None,
        timeout_graceful_shutdown=FINAL_GRACE_S,
        access_log=False,
    )
    DrainingServer(config, drain=lambda: drain_app(app)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
