"""Prometheus exposition passes `promtool check metrics`; settings read MEDSLIP_* environment variables."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from app.settings import Settings
from tests.app.conftest import dicom_bytes, png_bytes


async def test_promtool_accepts_metrics(client: httpx.AsyncClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    await client.post("/classify", content=dicom_bytes(), headers={"Content-Type": "application/dicom"})
    await client.post("/classify", content=png_bytes()[:50], headers={"Content-Type": "image/png"})
    text = (await client.get("/metrics")).text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSLIP_MAX_BATCH_SIZE", "6")
    monkeypatch.setenv("MEDSLIP_BATCH_BUCKETS", "[4, 1, 2]")
    monkeypatch.setenv("MEDSLIP_API_KEYS", '["k1"]')
    monkeypatch.setenv("MEDSLIP_DEVICE", "cpu")
    settings = Settings()
    assert settings.max_batch_size == 6 and settings.device == "cpu"
    assert settings.batch_buckets == [1, 2, 4, 6]  # extended to cover max_batch_size
    assert settings.effective_buckets() == [1, 2, 4, 6]
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1"]
    assert "k1" not in repr(settings)  # keys are secrets
    assert Settings(max_batch_size=2, batch_buckets=[1, 2, 4, 8]).effective_buckets() == [1, 2]
    monkeypatch.setenv("MEDSLIP_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device"):
        Settings()
