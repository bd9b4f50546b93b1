"""deploy/orthanc/orthanc.json starts a real Orthanc with DICOMweb on and the bridge as a modality.

Debian's Orthanc (same configuration format as the container image) runs on free loopback ports
with a temporary storage folder; only those three keys and the plugin path differ from the file
that docker-compose mounts.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.bench_load import free_port
from tests.support.deploy_tooling import REPO_ROOT, require_tool

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT_S = 30.0


@pytest.mark.e2e
def test_orthanc_starts_with_the_compose_config(tmp_path: Path) -> None:
    orthanc = require_tool("Orthanc", "Debian package orthanc")
    if not DICOMWEB_PLUGIN.is_file():
        pytest.skip("Debian package orthanc-dicomweb is not installed")
    config = json.loads((REPO_ROOT / "deploy" / "orthanc" / "orthanc.json").read_text())
    http_port, dicom_port = free_port(), free_port()
    config.update(
        HttpPort=http_port,
        DicomPort=dicom_port,
        StorageDirectory=str(tmp_path / "db"),
        IndexDirectory=str(tmp_path / "db"),
        Plugins=[str(DICOMWEB_PLUGIN)],
        RemoteAccessAllowed=False,  # loopback only in the test
    )
    config_path = tmp_path / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log_path = tmp_path / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([orthanc, str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"Orthanc refused the config:\n{log_path.read_text()[-3000:]}"
            try:
                if httpx.get(f"{base_url}/system", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"Orthanc did not start:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.2)
        system = httpx.get(f"{base_url}/system", timeout=5).json()
        assert system["DicomAet"] == "ORTHANC"
        assert httpx.get(f"{base_url}/dicom-web/studies", timeout=5).status_code == 200
        modalities = httpx.get(f"{base_url}/modalities", params={"expand": ""}, timeout=5).json()
        assert modalities["medslip"]["AET"] == "MEDSLIP"
        assert modalities["medslip"]["Port"] == 11112
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
