"""medslip-bench pieces: statistics, overhead arithmetic, the report, image selection and one HTTP level."""

from __future__ import annotations

import json
import time
from pathlib import Path

import onnxruntime as ort
import pytest

from app.bench import build_parser, load_images, markdown, overhead, require_device
from app.bench import main as bench_main
from app.bench_load import drive_level, percentiles
from app.runtime import CPU, CUDA
from tests.support.images import png_bytes
from tests.support.live_server import live_server


def test_percentiles_nearest_rank() -> None:
    stats = percentiles([float(v) for v in range(1, 101)])
    assert (stats["p50"], stats["p95"], stats["p99"], stats["mean"]) == (50.0, 95.0, 99.0, 50.5)


def test_overhead_against_reference() -> None:
    levels = [
        {"concurrency": 1, "latency_ms": {"p50": 110.0, "mean": 120.0}},
        {"concurrency": 4, "latency_ms": {"p50": 500.0, "mean": 500.0}},
    ]
    result = overhead(levels, {"p50": 100.0, "mean": 100.0})
    assert result == {"added_ms_p50": 10.0, "added_ms_mean": 20.0, "pct_p50": 10.0, "pct_mean": 20.0}
    assert overhead(levels[1:], {"p50": 1.0, "mean": 1.0}) is None


def test_markdown_has_every_column() -> None:
    stats = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "mean": 1.5}
    level = {
        "concurrency": 1,
        "latency_ms": stats,
        "throughput_rps": 10.0,
        "mean_batch_size": 1.0,
        "errors": {},
    }
    text = markdown(
        {
            "label": "tiny",
            "created": "now",
            "machine": "m",
            "command": "medslip-bench",
            "load_average": [1.0],
            "images": 3,
            "endpoint": "/classify",
            "in_process": {
                "provider": "CPUExecutionProvider",
                "onnxruntime_bare_ms": stats,
                "in_process_pipeline_ms": stats,
            },
            "servers": [
                {
                    "name": "batching on",
                    "levels": [level],
                    "overhead_vs_pipeline": {
                        "added_ms_p50": 1.0,
                        "added_ms_mean": 1.0,
                        "pct_p50": 5.0,
                        "pct_mean": 5.0,
                    },
                }
            ],
        }
    )
    assert "| concurrency | p50 ms | p95 ms | p99 ms | throughput req/s | mean batch | errors |" in text
    assert "| 1 | 1.00 | 2.00 | 3.00 | 10.0 | 1.00 | - |" in text and "(5.0 %)" in text


@pytest.mark.shared_data
def test_load_images_skips_hip_films(shared_data: Path) -> None:
    images = load_images(shared_data, 10)
    assert len(images) == 10
    assert {media for _, media in images} == {"application/dicom", "image/jpeg"}


async def test_drive_level_against_a_live_server(tiny_bundle: Path) -> None:
    with live_server(tiny_bundle) as url:
        level = await drive_level(url, "/classify", [(png_bytes(), "image/png")], 4, 12)
    assert level["ok"] == 12 and level["errors"] == {} and level["throughput_rps"] > 0
    assert 1.0 <= level["mean_batch_size"] <= 4.0 and level["latency_ms"]["p50"] > 0


def test_device_and_out_arguments(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--model-dir", "m", "--device", "cuda", "--out", str(tmp_path)])
    assert args.device == "cuda" and args.out == tmp_path
    assert build_parser().parse_args(["--model-dir", "m"]).device == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model-dir", "m", "--device", "tpu"])


def test_require_device() -> None:
    require_device("cuda", [CUDA, CPU])
    require_device("cpu", [CPU])
    require_device("auto", [CPU])
    with pytest.raises(SystemExit, match="--device cuda needs onnxruntime with the CUDAExecutionProvider"):
        require_device("cuda", [CPU])


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this host has CUDA: nothing to refuse")
def test_cuda_run_refused_at_once_without_cuda(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(SystemExit, match="CUDAExecutionProvider"):
        bench_main(["--model-dir", str(tmp_path / "absent"), "--device", "cuda", "--out", str(tmp_path)])
    assert time.perf_counter() - started < 5.0  # refused before any bundle, image or server
    assert not list(tmp_path.iterdir())


@pytest.mark.shared_data
def test_cpu_run_writes_json_and_markdown_to_out(
    tiny_bundle: Path, shared_data: Path, tmp_path: Path
) -> None:
    with live_server(tiny_bundle) as url:
        argv = ["--model-dir", str(tiny_bundle), "--device", "cpu", "--url", url,
                "--data-dir", str(shared_data), "--images", "2", "--requests", "4", "--concurrency", "1",
                "--threads", "1", "--out", str(tmp_path / "out")]
        assert bench_main(argv) == 0
    result = json.loads((tmp_path / "out" / "service.json").read_text())
    assert result["device"] == "cpu" and result["in_process"]["provider"] == CPU
    assert result["in_process"]["io_binding"] is False
    assert "IO binding off" in (tmp_path / "out" / "service.md").read_text()
