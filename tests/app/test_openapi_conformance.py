"""Schemathesis against the real service on loopback: every response matches the OpenAPI document.

Positive mode (schema-valid requests; random bytes as images are refused with documented problems),
a fixed seed and a few examples per operation keep it deterministic and well under a minute.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import NotAServerErrorConfig

from app.factory import create_app
from app.settings import Settings
from tests.app.test_serve_process import free_port

API_KEY = "conformance-key"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def service_url(tiny_bundle: Path) -> Iterator[str]:
    """The tiny-bundle service under uvicorn in a thread on 127.0.0.1, ready, API key required."""
    settings_ = Settings(
        model_dir=tiny_bundle, intra_op_threads=1, worker_threads=2, api_keys=[API_KEY], max_delay_ms=0.0
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings_), host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="conformance-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_ready(base: str, attempts: int = 600) -> None:
    import httpx

    for _ in range(attempts):  # bounded: about 60 s at most
        try:
            if httpx.get(f"{base}/health/ready", timeout=0.1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        threading.Event().wait(0.1)
    raise AssertionError("the service never became ready")


@pytest.fixture(scope="module")
def api_schema(service_url: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    schema.config.update(base_url=service_url)
    # A generated X-Deadline-Ms of a few microseconds rightly ends in 504 deadline_exceeded
    # (documented); any other 5xx is a failure.
    schema.config.checks.not_a_server_error = NotAServerErrorConfig(
        expected_statuses=["2xx", "3xx", "4xx", "504"]
    )
    return schema


#: Every documented operation, read from the app's own document (no lifespan runs for this).
OPERATIONS = [
    (method.upper(), path)
    for path, operations in create_app(Settings(model_dir=Path("unused"))).openapi()["paths"].items()
    for method in operations
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_response_matches_the_document(
    api_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": API_KEY}, checks=CHECKS)

    check()


def test_every_route_is_tested() -> None:
    """Guard against an empty run: the inference and operations routes are all in the document."""
    paths = {path for _, path in OPERATIONS}
    assert {"/classify", "/ground", "/segment", "/health/ready", "/v2/models/{name}/ready"} <= paths
