"""Composition root: the parts start, report health, and stop; egress configuration is validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.bridge.egress import CStoreEgress, StowEgress
from app.bridge.settings import BridgeSettings
from app.bridge.wiring import Bridge, build_egress


def _settings(tmp_path: Path, **overrides: object) -> BridgeSettings:
    values: dict[str, object] = {
        "spool_dir": tmp_path / "spool",
        "dicom_host": "127.0.0.1",
        "dicom_port": 0,
        "egress": "none",
        "poll_seconds": 0.05,
    }
    values.update(overrides)
    return BridgeSettings(**values)  # type: ignore[arg-type]


def test_runtime_starts_reports_health_and_stops(tmp_path: Path) -> None:
    runtime = Bridge(_settings(tmp_path))
    client = TestClient(runtime.http_app())
    assert client.get("/health").status_code == 503  # not started: dispatcher not running
    runtime.start()
    try:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["dispatcher"] == "running"
        assert health["dicom_port"] > 0 and health["spool_depth"] == 0
        assert health["backlog"] == {"pending": 0, "by_state": {}, "retrying": 0, "oldest_seconds": 0.0}
        assert health["dead_letter"] == {}
        metrics = client.get("/metrics").text
        assert "medslip_bridge_backlog_oldest_seconds 0.0" in metrics
    finally:
        runtime.stop()
    assert runtime.health()["dispatcher"] == "stopped"


def test_egress_destinations_follow_settings(tmp_path: Path) -> None:
    both = build_egress(_settings(tmp_path, egress="both", dicomweb_url="http://pacs/dicom-web"))
    assert [type(d) for d in both.destinations] == [CStoreEgress, StowEgress]
    assert build_egress(_settings(tmp_path, egress="none")).destinations == []
    with pytest.raises(ValueError, match="DICOMWEB_URL"):
        build_egress(_settings(tmp_path, egress="stow"))
