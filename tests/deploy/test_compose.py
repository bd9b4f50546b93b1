"""docker-compose.yml is valid for Compose v1 and wires the stack the way the README describes.

`docker-compose config -q` (Debian's v1.29) needs no engine; the structural checks below catch what it
cannot: a GPU/CPU pair reachable under one name, healthchecks, and env names the code really reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.bridge.settings import BridgeSettings
from app.server import FINAL_GRACE_S
from app.settings import Settings
from tests.support.deploy_tooling import REPO_ROOT, require_tool, run_tool

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_HINT = "Debian package docker-compose"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def _copy_project(tmp_path: Path, compose_text: str) -> Path:
    """A project directory with the given compose file and the files it mounts."""
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / "docker-compose.yml").write_text(compose_text)
    return tmp_path


def test_compose_config_is_valid() -> None:
    docker_compose = require_tool("docker-compose", COMPOSE_HINT)
    result = run_tool([docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda text: "name: medslip\n" + text, "name"),  # Compose v2-only top-level key
        (
            lambda text: text.replace('    profiles: ["gpu"]\n', '    profiles: ["gpu"]\n    gpus: all\n'),
            "gpus",
        ),
        (
            lambda text: text.replace("      orthanc:\n        condition", "      pacs:\n        condition"),
            "pacs",
        ),
    ],
    ids=["top-level-name", "gpus-key", "unknown-dependency"],
)
def test_compose_config_fails_on_broken_copy(tmp_path: Path, breakage: Any, message: str) -> None:
    docker_compose = require_tool("docker-compose", COMPOSE_HINT)
    broken_text = breakage(COMPOSE_FILE.read_text())
    assert broken_text != COMPOSE_FILE.read_text(), "the breakage did not change the file"
    project = _copy_project(tmp_path, broken_text)
    result = run_tool(
        [docker_compose, "-f", str(project / "docker-compose.yml"), "config", "-q"], cwd=project
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_gpu_and_cpu_services_are_alternatives_under_one_name() -> None:
    services = _compose()["services"]
    gpu, cpu = services["medslip"], services["medslip-cpu"]
    assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
    assert gpu["build"]["args"]["VARIANT"] == "gpu" and cpu["build"]["args"]["VARIANT"] == "cpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in cpu
    for service in (gpu, cpu):
        assert service["networks"]["default"]["aliases"] == ["medslip"]
        assert service["read_only"] is True
    assert services["bridge"]["environment"]["MEDSLIP_BRIDGE_SERVICE_URL"] == "http://medslip:8000"
    # The default profile (read by Compose from .env) is the GPU service.
    assert "COMPOSE_PROFILES=gpu" in (REPO_ROOT / ".env").read_text().splitlines()


def test_long_running_services_have_healthchecks_and_bridge_waits_for_pacs() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    assert services["bridge"]["depends_on"]["orthanc"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(services["medslip"]["healthcheck"]["test"])
    assert services["prometheus"]["profiles"] == ["monitoring"]


def test_published_ports_bind_to_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_mounted_config_files_exist_and_orthanc_knows_the_bridge() -> None:
    services = _compose()["services"]
    mounts = [*services["orthanc"]["volumes"], *services["prometheus"]["volumes"]]
    for mount in mounts:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (REPO_ROOT / source).is_file(), f"{source} is mounted but missing"
    orthanc = json.loads((REPO_ROOT / "deploy/orthanc/orthanc.json").read_text())
    bridge_env = services["bridge"]["environment"]
    assert orthanc["DicomModalities"]["medslip"]["AET"] == bridge_env["MEDSLIP_BRIDGE_AE_TITLE"]
    assert orthanc["DicomModalities"]["medslip"]["Port"] == int(bridge_env["MEDSLIP_BRIDGE_DICOM_PORT"])
    assert orthanc["DicomAet"] == bridge_env["MEDSLIP_BRIDGE_PACS_AE_TITLE"]
    assert orthanc["DicomPort"] == int(bridge_env["MEDSLIP_BRIDGE_PACS_PORT"])
    assert orthanc["DicomWeb"]["Enable"] is True


def test_environment_names_are_real_settings() -> None:
    """A misspelt MEDSLIP_* variable is silently ignored by pydantic-settings: catch it here."""
    service_fields = {f"MEDSLIP_{name.upper()}" for name in Settings.model_fields}
    bridge_fields = {f"MEDSLIP_BRIDGE_{name.upper()}" for name in BridgeSettings.model_fields}
    services = _compose()["services"]
    for name in ("medslip", "medslip-cpu"):
        unknown = set(services[name]["environment"]) - service_fields
        assert not unknown, f"{name}: {sorted(unknown)} are not fields of app.settings.Settings"
    unknown = set(services["bridge"]["environment"]) - bridge_fields
    assert not unknown, f"bridge: {sorted(unknown)} are not fields of app.bridge.settings.BridgeSettings"


def test_stop_grace_period_outlasts_the_drain() -> None:
    """Docker sends SIGKILL after stop_grace_period; the drain and the server's last grace come first."""
    services = _compose()["services"]
    for name in ("medslip", "medslip-cpu"):
        grace_s = int(str(services[name]["stop_grace_period"]).removesuffix("s"))
        drain_s = float(services[name]["environment"]["MEDSLIP_DRAIN_TIMEOUT_S"])
        assert grace_s > drain_s + FINAL_GRACE_S, f"{name}: stop_grace_period {grace_s}s too short"
