"""medslip-serve as a real process on loopback: SIGTERM drains in-flight requests; logs carry no PHI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.app.conftest import PHI, dicom_bytes, dicom_dataset

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"medslip-serve exited early with {process.returncode}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("medslip-serve never became ready")


def wait_until_queued(base: str, depth: int, timeout_s: float = 2.5) -> None:
    """Poll /metrics (bounded) until `depth` requests wait in the batching queue."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if f"medslip_queue_depth {float(depth)}" in httpx.get(f"{base}/metrics", timeout=1.0).text:
            return
        time.sleep(0.02)
    raise AssertionError(f"{depth} requests never queued")


def test_sigterm_drains_in_flight_requests_and_logs_no_phi(tiny_bundle: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MEDSLIP_MAX_DELAY_MS": "3000",  # requests sit in the queue long enough to be "in flight" at SIGTERM
        "MEDSLIP_EAGER_RELEASE": "false",
        "MEDSLIP_INTRA_OP_THREADS": "1",
        "MEDSLIP_LOG_FORMAT": "json",
        "MEDSLIP_LOG_LEVEL": "DEBUG",
    }
    command = [
        sys.executable,
        "-m",
        "app.main",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model-dir",
        str(tiny_bundle),
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(base, process)
        ds = dicom_dataset()
        phi_values = [*PHI.values(), ds.StudyInstanceUID, ds.SOPInstanceUID, ds.SeriesInstanceUID]
        lateral = dicom_dataset()
        lateral.ViewPosition = "LL"
        payloads = [dicom_bytes(ds)] * 3 + [dicom_bytes(lateral)]

        def post(body: bytes) -> httpx.Response:
            return httpx.post(
                f"{base}/ground", content=body, timeout=30.0, headers={"Content-Type": "application/dicom"}
            )

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(post, body) for body in payloads]
            wait_until_queued(base, depth=3)  # the lateral one is refused at decode, three wait for a batch
            process.send_signal(signal.SIGTERM)
            responses = [f.result(timeout=60) for f in futures]
        assert [r.status_code for r in responses] == [200, 200, 200, 422]
        assert responses[3].json()["code"] == "unsupported_view"
        # uvicorn re-raises the captured SIGTERM after a clean shutdown, so -SIGTERM is a clean exit too
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    stdout, stderr = process.communicate(timeout=10)
    logs = (stdout + stderr).decode("utf-8", "replace")
    assert '"msg": "stopped"' in logs
    for value in phi_values:
        assert str(value) not in logs
    for line in stderr.decode().splitlines():
        json.loads(line)  # every log line is JSON


def test_serve_refuses_to_start_without_a_bundle(tmp_path: Path) -> None:
    env = {**os.environ, "MEDSLIP_MODEL_STORE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "app.main"], cwd=REPO, env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert b"holds no image-model bundle" in result.stderr
