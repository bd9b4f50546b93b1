"""The real service on a free loopback port in a daemon thread, for clients that need a socket
(benchmark drivers, a headless browser)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.factory import create_app
from app.settings import Settings
from tests.app.test_serve_process import free_port


@contextmanager
def live_server(model_dir: Path, *, ready_timeout_s: float = 60.0, **overrides: Any) -> Iterator[str]:
    """Serve the bundle at `model_dir` (Settings `overrides` on top), poll /health/ready (bounded by
    `ready_timeout_s`) until it answers 200, yield the base URL, stop the server on the way out."""
    port = free_port()
    settings = Settings(**{"model_dir": model_dir, "intra_op_threads": 1, **overrides})
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError(f"the service at {url} was not ready within {ready_timeout_s} s")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
