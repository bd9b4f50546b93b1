"""Processes for the end-to-end tests: a real Orthanc, the inference service and the bridge on loopback.

Every wait is bounded; every process logs to a file under the test's tmp dir so that the logs of the
whole run can be checked for patient data afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.bench_load import free_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AE = "ORTHANC"
BRIDGE_AE = "MEDSLIP"
REPO = Path(__file__).resolve().parents[3]


def console_script(name: str) -> str:
    """A console script of this project: the one installed beside the running interpreter (a venv used
    without activating it), else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name) or name


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.2,
    process: Process | None = None,
) -> Any:
    """Poll until `predicate()` is truthy; fail after `timeout` s, or at once if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            tail = process.log_path.read_text(errors="replace")[-2000:]
            raise AssertionError(f"process exited while waiting for {what}; log tail:\n{tail}")
        try:
            value = predicate()
        except (httpx.HTTPError, OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def missing_tools() -> list[str]:
    missing = [tool for tool in ("Orthanc", "dciodvfy") if shutil.which(tool) is None]
    if not DICOMWEB_PLUGIN.exists():
        missing.append(str(DICOMWEB_PLUGIN))
    return missing


@dataclass
class Process:
    """A child process with its log file; `stop` is graceful, `kill` is SIGKILL (crash)."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def assert_alive(self) -> None:
        assert self.popen.poll() is None, f"process exited; see {self.log_path}"


def start_process(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Process:
    log = log_path.open("ab")
    popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    log.close()
    return Process(popen, log_path)


@dataclass
class Orthanc:
    process: Process
    http_url: str
    dicom_port: int
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.http_url, timeout=60)

    def upload(self, data: bytes) -> str:
        """POST a Part 10 file; returns Orthanc's instance id."""
        response = self.client.post("/instances", content=data)
        response.raise_for_status()
        return str(response.json()["ID"])

    def send_to_modality(self, modality: str, instance_ids: list[str]) -> None:
        """Have Orthanc C-STORE instances to a configured modality (synchronous job)."""
        response = self.client.post(
            f"/modalities/{modality}/store", json={"Resources": instance_ids, "Synchronous": True}
        )
        response.raise_for_status()

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS (DICOMweb plugin): the study's instances as DICOM JSON."""
        response = self.client.get(f"/dicom-web/studies/{study_uid}/instances")
        if response.status_code in {204, 404}:
            return []
        response.raise_for_status()
        return list(response.json())

    def study_metadata(self, study_uid: str) -> list[dict[str, Any]]:
        """WADO-RS metadata (DICOMweb plugin): every instance of the study as DICOM JSON."""
        response = self.client.get(f"/dicom-web/studies/{study_uid}/metadata")
        response.raise_for_status()
        return list(response.json())

    def instance_file(self, sop_instance_uid: str) -> bytes:
        ids = self.client.post("/tools/lookup", content=sop_instance_uid).json()
        [match] = [item for item in ids if item["Type"] == "Instance"]
        return self.client.get(f"/instances/{match['ID']}/file").content


def start_orthanc(work: Path, modalities: dict[str, int]) -> Orthanc:
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "medslip-e2e",
        "StorageDirectory": str(work / "orthanc-db"),
        "IndexDirectory": str(work / "orthanc-db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AE,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {name: [BRIDGE_AE, "127.0.0.1", port] for name, port in modalities.items()},
        "DicomScuTimeout": 30,
        "SaveJobs": False,
        "ConcurrentJobs": 1,
    }
    config_path = work / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    process = start_process(["Orthanc", str(config_path)], work / "orthanc.log")
    orthanc = Orthanc(process, f"http://127.0.0.1:{http_port}", dicom_port)
    wait_until(
        lambda: orthanc.client.get("/system").status_code == 200, 60, "Orthanc to answer", process=process
    )
    return orthanc


def restart_orthanc(orthanc: Orthanc, work: Path) -> None:
    """Start Orthanc again on the same config, ports and storage (after `orthanc.process.stop()`)."""
    orthanc.process = start_process(["Orthanc", str(work / "orthanc.json")], work / "orthanc.log")
    wait_until(
        lambda: orthanc.client.get("/system").status_code == 200,
        60,
        "Orthanc to answer again",
        process=orthanc.process,
    )


def start_service(work: Path, bundle_dir: Path) -> tuple[Process, str]:
    port = free_port()
    process = start_process(
        [console_script("medslip-serve"), "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(bundle_dir)],
        work / "service.log",
        env={"OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/health/ready", timeout=2).status_code == 200,
        120,
        "service ready",
        process=process,
    )
    return process, url


@dataclass
class BridgeConfig:
    spool_dir: Path
    service_url: str
    model_name: str
    pacs_port: int
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    stable_seconds: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "MEDSLIP_BRIDGE_SPOOL_DIR": str(self.spool_dir),
            "MEDSLIP_BRIDGE_SERVICE_URL": self.service_url,
            "MEDSLIP_BRIDGE_MODEL_NAME": self.model_name,
            "MEDSLIP_BRIDGE_HTTP_HOST": "127.0.0.1",
            "MEDSLIP_BRIDGE_HTTP_PORT": str(self.http_port),
            "MEDSLIP_BRIDGE_DICOM_HOST": "127.0.0.1",
            "MEDSLIP_BRIDGE_DICOM_PORT": str(self.dicom_port),
            "MEDSLIP_BRIDGE_AE_TITLE": BRIDGE_AE,
            "MEDSLIP_BRIDGE_PACS_HOST": "127.0.0.1",
            "MEDSLIP_BRIDGE_PACS_PORT": str(self.pacs_port),
            "MEDSLIP_BRIDGE_PACS_AE_TITLE": ORTHANC_AE,
            "MEDSLIP_BRIDGE_STABLE_SECONDS": str(self.stable_seconds),
            "MEDSLIP_BRIDGE_POLL_SECONDS": "0.2",
            "MEDSLIP_BRIDGE_RETRY_BASE_SECONDS": "0.2",
            "MEDSLIP_BRIDGE_RETRY_MAX_SECONDS": "1",
            "MEDSLIP_BRIDGE_MAX_ATTEMPTS": "50",
            "MEDSLIP_BRIDGE_MAX_HEATMAPS": "1",
            "MEDSLIP_BRIDGE_LOG_LEVEL": "DEBUG",
            "OMP_NUM_THREADS": "1",
            **self.extra_env,
        }


def start_bridge(config: BridgeConfig, log_path: Path) -> Process:
    process = start_process([console_script("medslip-bridge")], log_path, env=config.env())
    url = f"http://127.0.0.1:{config.http_port}/health"
    wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, 60, "bridge health", process=process)
    return process
