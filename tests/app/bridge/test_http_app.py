"""STOW-RS ingress per PS3.18 (200 / 202 / 409 with failure reasons), health and metrics."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient

from app.bridge.dicomweb import (
    FAILURE_CANNOT_UNDERSTAND,
    FAILURE_DATASET_MISMATCH,
    FAILURE_SOP_CLASS_NOT_SUPPORTED,
    build_multipart_related,
)
from app.bridge.http_app import create_app
from app.bridge.journal import InstanceState
from app.bridge.metrics import BridgeMetrics
from app.bridge.spool import Spool
from tests.support.bridge.fakes import make_chest_dicom

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def client(spool: Spool) -> TestClient:
    metrics = BridgeMetrics(spool.depth)
    return TestClient(create_app(spool, metrics, 10_000_000, lambda: {"status": "ok"}))


def _post(client: TestClient, payloads: list[bytes], path: str = "/studies") -> tuple[int, dict[str, Any]]:
    body, content_type = build_multipart_related(payloads)
    response = client.post(path, content=body, headers={"Content-Type": content_type})
    return response.status_code, response.json()


def _failure_reasons(body: dict[str, Any]) -> list[int]:
    return [item["00081197"]["Value"][0] for item in body.get("00081198", {}).get("Value", [])]


def test_all_stored_is_200_and_spooled(client: TestClient, spool: Spool) -> None:
    status, body = _post(client, [make_chest_dicom(), make_chest_dicom(view="LL")])
    assert status == 200
    assert len(body["00081199"]["Value"]) == 2 and "00081198" not in body
    assert [r.state for r in spool.journal.load_all()] == [InstanceState.RECEIVED] * 2


def test_partial_success_is_202_with_per_instance_reasons(client: TestClient, spool: Spool) -> None:
    status, body = _post(
        client, [make_chest_dicom(), make_chest_dicom(sop_class_uid=MR_IMAGE_STORAGE), b"garbage"]
    )
    assert status == 202
    assert _failure_reasons(body) == [FAILURE_SOP_CLASS_NOT_SUPPORTED, FAILURE_CANNOT_UNDERSTAND]
    assert len(body["00081199"]["Value"]) == 1
    assert len(spool.journal.load_all()) == 1


def test_nothing_stored_is_409(client: TestClient, spool: Spool) -> None:
    status, body = _post(client, [make_chest_dicom(sop_class_uid=MR_IMAGE_STORAGE)])
    assert status == 409
    assert _failure_reasons(body) == [FAILURE_SOP_CLASS_NOT_SUPPORTED]
    assert spool.journal.load_all() == []


def test_study_in_url_must_match(client: TestClient) -> None:
    status, body = _post(client, [make_chest_dicom(study_uid="1.2.3")], path="/studies/1.2.4")
    assert status == 409 and _failure_reasons(body) == [FAILURE_DATASET_MISMATCH]
    status, _ = _post(client, [make_chest_dicom(study_uid="1.2.3")], path="/studies/1.2.3")
    assert status == 200


def test_wrong_media_types_are_415_problems(client: TestClient) -> None:
    response = client.post("/studies", content=b"x", headers={"Content-Type": "application/dicom"})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert response.headers["content-type"].startswith("application/problem+json")
    body, _ = build_multipart_related([b"x"])
    response = client.post(
        "/studies", content=body, headers={"Content-Type": 'multipart/related; type="image/png"; boundary=b'}
    )
    assert response.status_code == 415


def test_malformed_multipart_is_400(client: TestClient) -> None:
    response = client.post(
        "/studies", content=b"no parts here", headers={"Content-Type": "multipart/related; boundary=abc"}
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_multipart"


def test_oversized_body_is_413(spool: Spool) -> None:
    small = TestClient(create_app(spool, BridgeMetrics(), 100, lambda: {"status": "ok"}))
    status, body = _post(small, [make_chest_dicom()])
    assert status == 413 and body["code"] == "payload_too_large"


def test_resending_an_instance_is_accepted_once(client: TestClient, spool: Spool) -> None:
    data = make_chest_dicom()
    assert _post(client, [data])[0] == 200
    assert _post(client, [data])[0] == 200
    assert len(spool.journal.load_all()) == 1


def _received(client: TestClient) -> dict[str, float]:
    """outcome -> count of the STOW ingress series of /metrics."""
    prefix = 'medslip_bridge_instances_received_total{ingress="stow",outcome="'
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]
    return {line[len(prefix):].split('"')[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_ingress_metric_counts_duplicates_and_requeued_dead_letters_apart(
    client: TestClient, spool: Spool
) -> None:
    """A re-sent instance is acknowledged like a new one, but counted as what it is."""
    known, dead = make_chest_dicom(), make_chest_dicom()
    assert _post(client, [known, dead])[0] == 200
    dead_key = spool.instance_key(pydicom.dcmread(io.BytesIO(dead), stop_before_pixels=True).SOPInstanceUID)
    spool.dead_letter(spool.journal.load(dead_key), "egress: association_failed", "egress")
    assert _post(client, [known, dead, make_chest_dicom(sop_class_uid=MR_IMAGE_STORAGE)])[0] == 202
    assert _received(client) == {"stored": 2.0, "duplicate": 1.0, "requeued": 1.0, "rejected": 1.0}
    assert spool.journal.load(dead_key).state is InstanceState.RECEIVED  # requeued, processed again


def test_health_and_metrics(client: TestClient, spool: Spool) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    _post(client, [make_chest_dicom()])
    text = client.get("/metrics").text
    assert 'medslip_bridge_instances_received_total{ingress="stow",outcome="stored"} 1.0' in text
    assert "medslip_bridge_spool_depth 1.0" in text


def test_unhealthy_is_503(spool: Spool) -> None:
    client = TestClient(create_app(spool, BridgeMetrics(), 100, lambda: {"status": "degraded"}))
    assert client.get("/health").status_code == 503
