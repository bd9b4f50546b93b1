"""Service calls: retries with backoff on transient failures, one idempotency key, refusals not retried."""

from __future__ import annotations

from typing import Any

import pytest

from app.bridge.identifiers import idempotency_key
from app.bridge.inference import InferenceResult
from app.bridge.retry import Backoff
from app.bridge.service_client import InferenceClient, ServiceRefusedError, ServiceUnavailableError
from tests.support.bridge.fakes import FINDINGS, fake_answers, model_metadata, problem
from tests.support.bridge.loopback import CannedResponse, scripted_server

ANSWERS = fake_answers(8, 8)
META = CannedResponse(200, model_metadata("tiny", "7.1"))


def _client(url: str, delays: list[float], retries: int = 3) -> InferenceClient:
    backoff = Backoff(base_seconds=0.5, max_seconds=4.0, jitter=lambda: 1.0)  # jitter pinned: nominal*1.0
    return InferenceClient(
        url, retries=retries, backoff=backoff, model_name="tiny", api_key="s3cret", sleep=delays.append
    )


def _ok(route: str) -> CannedResponse:
    return CannedResponse(200, ANSWERS[route])


def test_transient_failures_are_retried_with_backoff_and_the_same_idempotency_key() -> None:
    unavailable = CannedResponse(503, {"code": "queue_full"})
    script = {
        "/v2/models": [META],
        "/classify": [unavailable, unavailable, _ok("classify")],
        "/ground": [_ok("ground")],
        "/segment": [_ok("segment")],
    }
    delays: list[float] = []
    with scripted_server(script) as server:
        client = _client(server.url, delays)
        result = client.infer(b"DICM", "1.2.3.4", findings=["effusion"], max_grounded=2)
        client.close()
    assert [f.model_dump() for f in result.classify.findings] == ANSWERS["classify"]["findings"]
    assert delays == [0.5, 1.0]  # base 0.5 * 2**n, jitter factor (0.5 + 0.5 * 1.0) = 1
    classify_calls = [r for r in server.requests if r.path.startswith("/classify")]
    assert len(classify_calls) == 3
    keys = {r.headers["Idempotency-Key"] for r in classify_calls}
    assert keys == {idempotency_key("1.2.3.4", "7.1", "classify")}
    assert "1.2.3.4" not in next(iter(keys))  # the UID never travels in clear
    assert classify_calls[0].headers["Content-Type"] == "application/dicom"
    assert classify_calls[0].headers["X-API-Key"] == "s3cret"
    assert "findings=effusion" in classify_calls[0].path
    ground = next(r for r in server.requests if r.path.startswith("/ground"))
    assert ground.headers["Idempotency-Key"] != next(iter(keys))  # one key per route
    # the two highest-scoring findings are grounded
    assert "findings=effusion" in ground.path and "findings=cardiomegaly" in ground.path


def test_refusal_is_not_retried_and_keeps_the_problem_code() -> None:
    script = {"/v2/models": [META], "/classify": [CannedResponse(422, problem(422, "not_chest"))]}
    delays: list[float] = []
    with scripted_server(script) as server:
        client = _client(server.url, delays)
        with pytest.raises(ServiceRefusedError) as refusal:
            client.infer(b"DICM", "1.2.3.4", findings=[], max_grounded=1)
    assert refusal.value.code == "not_chest" and refusal.value.status == 422
    assert delays == []
    assert len([r for r in server.requests if r.path.startswith("/classify")]) == 1


def test_gives_up_after_retries_and_honours_retry_after() -> None:
    script = {"/v2/models": [META], "/classify": [CannedResponse(503, {}, {"Retry-After": "3"})]}
    delays: list[float] = []
    with scripted_server(script) as server:
        client = _client(server.url, delays, retries=2)
        with pytest.raises(ServiceUnavailableError, match="HTTP 503 after 3 attempts"):
            client.infer(b"DICM", "1.2.3.4", findings=[], max_grounded=1)
    assert delays == [3.0, 3.0]  # Retry-After (3 s) is longer than our 0.5 s and 1 s


def test_unreachable_service_is_unavailable_not_refused() -> None:
    delays: list[float] = []
    client = _client("http://127.0.0.1:9", delays, retries=1)  # discard port: connection refused
    with pytest.raises(ServiceUnavailableError):
        client.infer(b"DICM", "1.2.3.4", findings=[], max_grounded=1)
    assert len(delays) == 1


def test_unknown_model_name_is_a_configuration_problem_not_a_refusal() -> None:
    script: dict[str, Any] = {"/v2/models": [CannedResponse(404, problem(404, "unknown_model"))]}
    with scripted_server(script) as server:
        client = _client(server.url, [])
        with pytest.raises(ServiceUnavailableError, match="unknown_model"):
            client.model_version()


def test_backoff_is_capped_and_jittered_within_half_to_full() -> None:
    backoff = Backoff(base_seconds=1.0, max_seconds=10.0, jitter=lambda: 0.0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    full = Backoff(base_seconds=1.0, max_seconds=10.0, jitter=lambda: 0.999999)
    assert full.delay(10) == pytest.approx(10.0, rel=1e-5)


def test_every_finding_is_grounded_when_no_limit_is_given() -> None:
    script = {
        "/v2/models": [META],
        "/classify": [_ok("classify")],
        "/ground": [_ok("ground")],
        "/segment": [_ok("segment")],
    }
    with scripted_server(script) as server:
        _client(server.url, []).infer(b"DICM", "1.2.3.4", findings=[], max_grounded=None)
    ground = next(r for r in server.requests if r.path.startswith("/ground"))
    assert ground.path.count("findings=") == len(ANSWERS["classify"]["findings"])
    segment = next(r for r in server.requests if r.path.startswith("/segment"))
    assert segment.path.count("anatomy=") == 5


def test_an_answer_breaking_the_http_contract_is_a_service_fault() -> None:
    broken = dict(ANSWERS["classify"], findings=[{"name": "effusion", "score": 1.7}])  # no threshold, >1
    script = {"/v2/models": [META], "/classify": [CannedResponse(200, broken)]}
    with scripted_server(script) as server:
        client = _client(server.url, [])
        with pytest.raises(ServiceUnavailableError, match="ClassifyResponse"):
            client.infer(b"DICM", "1.2.3.4", findings=[], max_grounded=1)


def test_a_refusal_without_the_services_problem_body_gets_a_code_from_its_status() -> None:
    """e.g. a reverse proxy answering 413 with its own HTML page."""
    script = {"/v2/models": [META], "/classify": [CannedResponse(413, {"error": "too big"})]}
    with scripted_server(script) as server:
        client = _client(server.url, [])
        with pytest.raises(ServiceRefusedError) as refusal:
            client.infer(b"DICM", "1.2.3.4", findings=[], max_grounded=1)
    assert refusal.value.code == "http_413"


def test_answers_spooled_by_an_earlier_bridge_still_parse() -> None:
    """Earlier versions saved the service JSON verbatim and {"findings": []} when nothing was grounded."""
    saved = {"classify": ANSWERS["classify"], "ground": {"findings": []}, "segment": ANSWERS["segment"]}
    result = InferenceResult.from_json(saved)
    assert result.ground is None
    assert [f.name for f in result.classify.findings] == [name for name, _, _ in FINDINGS]
    assert InferenceResult.from_json(result.to_json()) == result
