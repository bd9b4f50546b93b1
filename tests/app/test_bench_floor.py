"""The HTTP floor app of `medslip-bench compare`: it reads the whole upload and answers, nothing else."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from app.bench_floor import ANSWER_ENTRIES, FLOOR_PATH, create_app, spawn_floor


def test_floor_reads_the_whole_body_and_answers_json() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with TestClient(create_app()) as client:
        response = client.post(FLOOR_PATH, content=payload, headers={"Content-Type": "application/dicom"})
        assert response.status_code == 200
        body = response.json()
        assert body["received_bytes"] == len(payload)
        assert len(body["findings"]) == ANSWER_ENTRIES
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/docs").status_code == 404  # nothing beyond the two routes


def test_spawned_floor_answers_on_loopback_and_stops() -> None:
    process, url = spawn_floor(ready_timeout_s=60.0)
    try:
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(f"{url}{FLOOR_PATH}", content=b"x" * 1000, timeout=10.0)
        assert response.json()["received_bytes"] == 1000
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.poll() is not None  # stopped, not left behind
