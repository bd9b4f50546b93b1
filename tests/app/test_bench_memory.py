"""`medslip-bench memory` end to end on the tiny bundle: every variant's servers started in turn, measured,
stopped, and the settings each ran with visible in what it measured."""

from __future__ import annotations

import json
from pathlib import Path

from app.bench import main as bench_main
from app.bench_memory import report
from tests.support.images import dicom_bytes


def test_memory_bench_measures_every_variant(tmp_path: Path, tiny_bundle: Path) -> None:
    film = tmp_path / "film.dcm"
    film.write_bytes(dicom_bytes())
    variants = {"defaults": {}, "batch1": {"MEDSLIP_MAX_BATCH_SIZE": "1"}}
    argv = ["memory", "--model-dir", str(tiny_bundle), "--film", str(film),
            "--variants", json.dumps(variants), "--threads", "1", "--rounds", "1",
            "--latency-requests", "3", "--requests", "8", "--concurrency", "4",
            "--out", str(tmp_path / "out")]
    assert bench_main(argv) == 0

    result = json.loads((tmp_path / "out" / "memory.json").read_text())
    assert list(result["variants"]) == ["defaults", "batch1"]
    for variant in result["variants"].values():
        assert len(variant["runs"]) == 1
        for run in variant["runs"]:
            assert run["load_errors"] == {}
            assert 0 < run["rss_ready_mb"] <= run["hwm_mb"]
            assert run["rss_after_load_mb"] <= run["hwm_mb"]
            assert run["classify_c1_p50_ms"] > 0 and run["load_films_per_s"] > 0
            assert run["provider"] == "CPUExecutionProvider"
    text = (tmp_path / "out" / "memory.md").read_text()
    assert "| batch1 | `MEDSLIP_MAX_BATCH_SIZE=1` | CPUExecutionProvider |" in text
    assert "| defaults | defaults |" in text


def test_report_gives_the_range_over_rounds() -> None:
    run = {"rss_ready_mb": 700.0, "rss_after_load_mb": 800.0, "hwm_mb": 900.0, "classify_c1_p50_ms": 20.0,
           "load_films_per_s": 40.0, "provider": "p"}
    result = {
        "hardware": "cpu", "threads": 2, "rounds": 2, "requests": 96, "concurrency": 8,
        "endpoints": ["/classify"],
        "variants": {"v": {"env": {"MEDSLIP_RUNTIME": "openvino"},
                           "runs": [run, {**run, "rss_ready_mb": 710.4, "load_films_per_s": 44.0}]}},
    }
    text = report(result)
    assert "| v | `MEDSLIP_RUNTIME=openvino` | p | 700-710 | 800 | 900 | 20.0 | 40.0-44.0 |" in text
