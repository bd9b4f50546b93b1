"""The load side of `medslip-bench`: latency percentiles, a closed-loop HTTP client at a set concurrency,
and a `medslip-serve` process on a free loopback port (the comparison benchmark starts it too).

Kept apart from `app/bench.py` (arguments, in-process timing, the report) so that the tests and the
other benchmarks that need only a port or a server do not load the whole benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.contract.locations import REPO_ROOT

logger = logging.getLogger(__name__)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean of a list of milliseconds (nearest-rank on the sorted samples)."""
    ordered = sorted(samples_ms)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "mean": statistics.fmean(ordered)}


async def drive_level(
    url: str, endpoint: str | Sequence[str], images: list[tuple[bytes, str]], concurrency: int, total: int
) -> dict[str, Any]:
    """Closed loop at `concurrency`: returns latency percentiles, throughput and mean batch size. Several
    endpoints are taken in turn, request by request (a mixed load)."""
    endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
    latencies: list[float] = []
    batch_sizes: list[int] = []
    errors: dict[str, int] = {}
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                data, media = images[i % len(images)]
                start = time.perf_counter()
                path = endpoints[i % len(endpoints)]
                response = await client.post(path, content=data, headers={"Content-Type": media})
                elapsed = (time.perf_counter() - start) * 1000.0
                if response.status_code == 200:
                    latencies.append(elapsed)
                    batch_sizes.append(int(response.json()["batch_size"]))
                else:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

        wall_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall_start
    return {
        "concurrency": concurrency,
        "requests": total,
        "ok": len(latencies),
        "errors": errors,
        "latency_ms": percentiles(latencies) if latencies else None,
        "throughput_rps": len(latencies) / wall,
        "mean_batch_size": statistics.fmean(batch_sizes or [0]),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(model_dir: Path, port: int) -> list[str]:
    """`medslip-serve` of this interpreter on loopback `port`, serving `model_dir`."""
    return [sys.executable, "-m", "app.main", "--host", "127.0.0.1", "--port", str(port),
            "--model-dir", str(model_dir)]


def spawn_server(
    model_dir: Path,
    env_overrides: dict[str, str],
    threads: int,
    device: str = "auto",
    ready_timeout_s: float = 60.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start medslip-serve on a free loopback port and wait (at most `ready_timeout_s`) until it is
    ready, i.e. every batch bucket of every graph is warmed up."""
    port = free_port()
    env = {
        **os.environ,
        **env_overrides,
        "MEDSLIP_LOG_LEVEL": "WARNING",
        "MEDSLIP_INTRA_OP_THREADS": str(threads),
        "MEDSLIP_J2K_THREADS": str(threads),
        "MEDSLIP_DEVICE": device,
    }
    process = subprocess.Popen(
        serve_command(model_dir, port), env=env, cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, f"{url}/health/ready", ready_timeout_s, "medslip-serve")
    return process, url


def wait_until_up(process: subprocess.Popen[bytes], health_url: str, timeout_s: float, name: str) -> None:
    """Poll `health_url` every 0.1 s (bounded by `timeout_s`) until it answers 200; a process that exits
    or never answers ends the benchmark (SystemExit), the latter killed first."""
    for _ in range(int(timeout_s * 10)):
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}")
        try:
            if httpx.get(health_url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not become ready in {timeout_s:.0f} s")


def run_http(url: str, args: argparse.Namespace, images: list[tuple[bytes, str]]) -> list[dict[str, Any]]:
    levels = []
    for concurrency in args.concurrency:
        total = max(args.requests, 4 * concurrency)
        logger.info("http level", extra={"concurrency": concurrency, "requests": total})
        levels.append(asyncio.run(drive_level(url, args.endpoint, images, concurrency, total)))
    return levels
