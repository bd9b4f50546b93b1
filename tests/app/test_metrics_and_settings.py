"""Prometheus exposition passes `promtool check metrics`; settings read MEDSLIP_* and match the README."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from app.contract.locations import REPO_ROOT
from app.settings import OPENVINO_MAX_BATCH_SIZE, Settings
from tests.support.images import dicom_bytes, png_bytes


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


def test_openvino_batch_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under OpenVINO the largest batch defaults to 2 (memory); an operator's value, and an empty variable
    (a compose file passing one through), are honoured as such."""
    assert Settings().max_batch_size == 8 and Settings().effective_buckets() == [1, 2, 4, 8]
    openvino = Settings(runtime="openvino")
    assert openvino.max_batch_size == OPENVINO_MAX_BATCH_SIZE == 2
    assert openvino.effective_buckets() == [1, 2]
    assert Settings(runtime="openvino", max_batch_size=8).effective_buckets() == [1, 2, 4, 8]
    monkeypatch.setenv("MEDSLIP_RUNTIME", "openvino")
    monkeypatch.setenv("MEDSLIP_MAX_BATCH_SIZE", "")
    assert Settings().max_batch_size == 2
    monkeypatch.setenv("MEDSLIP_MAX_BATCH_SIZE", "8")
    assert Settings().max_batch_size == 8
    monkeypatch.setenv("MEDSLIP_RUNTIME", "")
    monkeypatch.setenv("MEDSLIP_MAX_BATCH_SIZE", "")
    assert Settings().runtime == "onnxruntime" and Settings().max_batch_size == 8


def _table_default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value).replace(str(REPO_ROOT), "<repo>")
    return str(value)


def test_readme_settings_table_matches_the_settings_class() -> None:
    """README's "Service settings" table is app/settings.py, field by field, in order."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### Service settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `MEDSLIP_")]
    expected = [
        f"| `MEDSLIP_{name.upper()}` | `{_table_default(field.get_default(call_default_factory=True))}` "
        f"| {field.description} |"
        for name, field in Settings.model_fields.items()
    ]
    assert rows == expected
