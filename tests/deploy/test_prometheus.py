"""promtool accepts deploy/prometheus.yml and the /metrics of a really running medslip-serve.

The service is started the way the container starts it (`medslip-serve` configured only through
MEDSLIP_* variables), on a free loopback port, with the tiny test bundle; one request goes through
so that histograms and counters carry samples before the scrape.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.bench_load import free_port
from app.bridge.metrics import BridgeMetrics
from app.metrics import ServiceMetrics
from tests.fixtures.tiny_bundle import build_tiny_bundle
from tests.support.deploy_tooling import REPO_ROOT, require_tool, run_tool

PROMTOOL_HINT = "Debian package prometheus"
RULES_FILE = REPO_ROOT / "deploy" / "prometheus-rules.yml"
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}
READY_TIMEOUT_S = 60.0


def _png_bytes() -> bytes:
    gradient = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (80, 1))  # (H, W) gray chest stand-in
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def running_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a medslip-serve process serving the tiny bundle; stopped after the module."""
    bundle = build_tiny_bundle(tmp_path_factory.mktemp("model_store"))
    port = free_port()
    env = {
        **os.environ,
        "MEDSLIP_MODEL_DIR": str(bundle),
        "MEDSLIP_HOST": "127.0.0.1",
        "MEDSLIP_PORT": str(port),
        "MEDSLIP_DEVICE": "cpu",
        "MEDSLIP_INTRA_OP_THREADS": "1",
        "MEDSLIP_MAX_BATCH_SIZE": "2",
        "MEDSLIP_BATCH_BUCKETS": "[1, 2]",
        "MEDSLIP_DRAIN_TIMEOUT_S": "1",
        "OMP_NUM_THREADS": "1",
    }
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.main"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"medslip-serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"medslip-serve not ready in {READY_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_prometheus_config_is_valid() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    result = run_tool([promtool, "check", "config", str(REPO_ROOT / "deploy" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [("scrape_interval: 15s", "scrape_interval: 15 seconds"), ("static_configs:", "static_config:")],
)
def test_prometheus_config_check_fails_on_broken_copy(tmp_path: Path, pattern: str, replacement: str) -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    text = (REPO_ROOT / "deploy" / "prometheus.yml").read_text()
    assert pattern in text
    broken = tmp_path / "prometheus.yml"
    broken.write_text(text.replace(pattern, replacement, 1))
    result = run_tool([promtool, "check", "config", str(broken)])
    assert result.returncode != 0


def test_scraped_metrics_pass_promtool(running_service: str) -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    answer = httpx.post(
        f"{running_service}/classify", content=_png_bytes(), headers={"Content-Type": "image/png"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    scrape = httpx.get(f"{running_service}/metrics", timeout=10)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    exposition = scrape.text
    # The series the HPA and the dashboards rely on are present and carry the request just made.
    assert "medslip_queue_depth " in exposition
    assert "medslip_model_ready 1.0" in exposition
    assert "medslip_batch_size_count 1.0" in exposition
    result = run_tool([promtool, "check", "metrics"], stdin=exposition)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_badly_named_metric(running_service: str) -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    exposition = httpx.get(f"{running_service}/metrics", timeout=10).text
    broken = (
        exposition
        + "# HELP medslip_bad_requests Bad.\n# TYPE medslip_bad_requests counter\nmedslip_bad_requests 1\n"
    )
    result = run_tool([promtool, "check", "metrics"], stdin=broken)
    assert result.returncode != 0
    assert "medslip_bad_requests" in result.stdout + result.stderr


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    check = run_tool([promtool, "check", "rules", str(RULES_FILE)])
    assert check.returncode == 0, check.stdout + check.stderr
    unit = run_tool([promtool, "test", "rules", "prometheus-rules.test.yml"], cwd=REPO_ROOT / "deploy")
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_rule_check_and_unit_tests_fail_on_broken_copies(tmp_path: Path) -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    text = RULES_FILE.read_text()
    syntax = tmp_path / "syntax.yml"
    syntax.write_text(text.replace("medslip_queue_depth > 48", "medslip_queue_depth >> 48", 1))
    assert run_tool([promtool, "check", "rules", str(syntax)]).returncode != 0
    # A changed threshold keeps the syntax valid; the unit tests must notice the behaviour change.
    (tmp_path / "prometheus-rules.yml").write_text(text.replace("for: 2m", "for: 10m", 1))
    (tmp_path / "prometheus-rules.test.yml").write_text(
        (REPO_ROOT / "deploy" / "prometheus-rules.test.yml").read_text()
    )
    unit = run_tool([promtool, "test", "rules", "prometheus-rules.test.yml"], cwd=tmp_path)
    assert unit.returncode != 0


def _exported_series_names() -> set[str]:
    """Every sample name the service and the bridge can export (families expanded by type)."""
    names: set[str] = set()
    for registry in (ServiceMetrics().registry, BridgeMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ()))
    return names


def test_alert_rules_only_use_metrics_that_exist() -> None:
    exprs = " ".join(re.findall(r"^\s+expr: (.+)$", RULES_FILE.read_text(), flags=re.MULTILINE))
    used = set(re.findall(r"\b(medslip_[a-z_]+)", exprs))
    assert used, "no medslip metric referenced"
    missing = used - _exported_series_names()
    assert not missing, f"alert rules reference metrics nobody exports: {sorted(missing)}"
