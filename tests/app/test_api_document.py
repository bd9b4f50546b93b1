"""The OpenAPI document says what the service does; its viewers work without any network."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from app.settings import MAX_DEADLINE_MS
from tests.support.service import running_app

INFERENCE = ("/classify", "/ground", "/segment")


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in operation["parameters"] if p["name"].lower() == name.lower())


async def test_api_key_is_a_security_scheme(make_app: Callable[..., FastAPI]) -> None:
    async with running_app(make_app(api_keys=["k"])) as client:
        keyed = (await client.get("/openapi.json")).json()
    async with running_app(make_app()) as client:
        open_ = (await client.get("/openapi.json")).json()
    schemes = keyed["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "API key (when the service is configured with keys)",
    }
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    for path in INFERENCE:
        assert keyed["paths"][path]["post"]["security"] == [{"ApiKey": []}, {"Bearer": []}]
        # Without configured keys the same operations say credentials are optional.
        assert open_["paths"][path]["post"]["security"] == [{"ApiKey": []}, {"Bearer": []}, {}]
        names = {p["name"].lower() for p in keyed["paths"][path]["post"]["parameters"]}
        assert not {"x-api-key", "authorization"} & names  # schemes, not loose header parameters
    assert "security" not in keyed["paths"]["/health/ready"]["get"]


async def test_parameters_state_their_bounds(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    segment = spec["paths"]["/segment"]["post"]
    anatomy = _parameter(segment, "anatomy")["schema"]
    assert anatomy["items"]["enum"] == list(SEGMENTATION_STRUCTURES)
    for path in INFERENCE:
        operation = spec["paths"][path]["post"]
        deadline = _parameter(operation, "x-deadline-ms")["schema"]["anyOf"][0]
        assert deadline["exclusiveMinimum"] == 0 and deadline["maximum"] == MAX_DEADLINE_MS
        assert _parameter(operation, "x-priority")["schema"]["enum"] == ["stat", "routine"]


async def test_every_status_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    expected = {
        ("post", "/classify"): {"200", "400", "401", "408", "413", "415", "422", "500", "503", "504"},
        ("get", "/health/ready"): {"200", "503"},
        ("get", "/v2/health/ready"): {"200", "503"},
        ("get", "/v2/models/{name}"): {"200", "404", "422", "503"},
        ("get", "/v2/models/{name}/ready"): {"200", "404", "422", "503"},
        ("get", "/health/live"): {"200"},
        ("get", "/metrics"): {"200"},
    }
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == statuses, path
        for status in statuses - {"200"}:
            assert "application/problem+json" in responses[status]["content"], (path, status)
    assert set(spec["paths"]["/segment"]["post"]["responses"]) == expected[("post", "/classify")]


async def test_unknown_models_are_404_on_every_model_route(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()
    async with running_app(app, ready=False) as client:
        for path in ("/v2/models/other", "/v2/models/other/ready"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["code"] == "unknown_model"
            assert response.headers["content-type"] == "application/problem+json"
        from tests.support.service import wait_ready

        await wait_ready(client)
        assert (await client.get("/v2/models/other/ready")).status_code == 404
        assert (await client.get("/v2/models/tiny-cxr/ready")).json() == {"name": "tiny-cxr", "ready": True}


async def test_docs_work_without_network(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "openapi.json" in html
        assert "http://" not in html and "https://" not in html and "//cdn" not in html, page
        for asset in re.findall(r"(?:src|href)=[\"'](/static/docs/[^\"']+)", html):
            response = await client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
    bundle = await client.get("/static/docs/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text
    redoc = await client.get("/static/docs/redoc.standalone.js")
    assert redoc.status_code == 200 and "Redoc" in redoc.text
