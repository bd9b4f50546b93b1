"""medslip-serve as a real process on loopback: SIGTERM drains, slow headers are cut, JSON logs, no PHI."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from app.bench_load import free_port, serve_command
from tests.support.images import PHI, dicom_bytes, dicom_dataset

REPO = Path(__file__).resolve().parents[2]


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
    process = subprocess.Popen(
        serve_command(tiny_bundle, port), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
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
    assert '"message": "stopped"' in logs
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


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR (CRC fixed) claims width x height pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_sigterm_readiness_503_then_queued_requests_get_problem_503(tiny_bundle: Path) -> None:
    """Also: slow request headers are cut with 408, and Python warnings are JSON log lines."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MEDSLIP_MAX_DELAY_MS": "60000",  # requests wait in the queue until the drain cuts them
        "MEDSLIP_EAGER_RELEASE": "false",
        "MEDSLIP_DRAIN_TIMEOUT_S": "2",
        "MEDSLIP_HEADER_TIMEOUT_S": "0.5",
        "MEDSLIP_RETRY_AFTER_S": "3",
        "MEDSLIP_INTRA_OP_THREADS": "1",
        "MEDSLIP_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "app.main", "--port", str(port), "--model-dir", str(tiny_bundle)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(base, process)
        # Headers that never finish: answered 408 and closed after MEDSLIP_HEADER_TIMEOUT_S.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n")
            reply = b""
            while chunk := sock.recv(4096):  # ends when the server closes the connection
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"
        # Pillow warns about a decompression bomb: one redacted JSON line with the request id.
        bomb = httpx.post(
            f"{base}/classify",
            content=_png_claiming(10_000, 9_000),
            headers={"Content-Type": "image/png", "X-Request-ID": "warning-probe"},
            timeout=30.0,
        )
        assert bomb.status_code == 413

        def post(body: bytes) -> httpx.Response:
            return httpx.post(
                f"{base}/classify", content=body, timeout=30.0, headers={"Content-Type": "application/dicom"}
            )

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post, dicom_bytes()) for _ in range(3)]
            wait_until_queued(base, depth=3)
            process.send_signal(signal.SIGTERM)
            for _ in range(250):  # bounded (5 s): until the signal has been handled
                ready = httpx.get(f"{base}/health/ready", timeout=5.0)  # still listening...
                if ready.status_code != 200:
                    break
                time.sleep(0.02)
            assert ready.status_code == 503 and ready.json()["code"] == "shutting_down"  # ...not ready
            assert ready.headers["retry-after"] == "3"
            late = post(dicom_bytes())
            assert late.status_code == 503 and late.json()["code"] == "shutting_down"
            responses = [f.result(timeout=30) for f in futures]
        for response in responses:  # cut at the drain timeout, with a problem the client can retry
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "shutting_down" and response.headers["retry-after"] == "3"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    stdout, stderr = process.communicate(timeout=10)
    records = [json.loads(line) for line in stderr.decode().splitlines()]  # every line is JSON
    warnings_ = [r for r in records if r["logger"] == "py.warnings"]
    assert warnings_ and all(r["request_id"] == "warning-probe" for r in warnings_)
    assert {r["category"] for r in warnings_} == {"DecompressionBombWarning"}
    assert not any("90000000" in r["detail"] for r in warnings_)  # numbers from the input are masked
    drained = "drain timeout: queued requests refused"
    assert any(r["message"] == drained and r["aborted"] == 3 for r in records)
    assert not [r for r in records if r["level"] == "ERROR"]
    assert not stdout
