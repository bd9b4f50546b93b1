"""`medslip-bench ops`: per-operator kernel time from ONNX Runtime's profiler, on the tiny bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.bench_ops import main, operator_times, profile_graph, timed_events
from app.contract.bundle import load_bundle


def _run(ts: int, dur: int) -> dict[str, Any]:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _kernel(op: str, ts: int, dur: int) -> dict[str, Any]:
    return {"cat": "Node", "name": f"node_{op}_{ts}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op}}


def test_only_the_last_runs_are_counted_and_kernels_are_summed_per_operator_type() -> None:
    events = [
        _run(0, 100), _kernel("Conv", 10, 90),  # warm-up run: not counted
        _run(200, 100), _kernel("Conv", 210, 40), _kernel("MatMul", 260, 20),
        {"cat": "Node", "name": "node_fence_before", "ts": 255, "dur": 5, "args": {"op_name": "MatMul"}},
        _run(400, 100), _kernel("Conv", 410, 60), _kernel("MatMul", 480, 10),
    ]
    ops = operator_times(timed_events(events, runs=2), runs=2)
    assert ops == {"Conv": pytest.approx(0.05), "MatMul": pytest.approx(0.015)}  # ms per run, largest first
    assert list(ops) == ["Conv", "MatMul"]
    with pytest.raises(ValueError, match="fewer than the 4"):
        timed_events(events, runs=4)


def test_a_real_profile_of_the_tiny_bundle_names_its_operators(tiny_bundle: Path) -> None:
    graph = profile_graph(load_bundle(tiny_bundle), "image_model", threads=1, batch=2, runs=3, warmup=1)
    ops = {o["op"] for o in graph["operators"]}
    assert {"Conv", "MatMul"} <= ops
    assert graph["kernel_ms_per_run"] > 0
    assert sum(o["share"] for o in graph["operators"]) == pytest.approx(1.0, abs=0.01)
    assert graph["batch"] == 2 and graph["runs"] == 3


def test_the_command_writes_its_json_and_table(tiny_bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-dir", str(tiny_bundle), "--threads", "1", "--runs", "2", "--warmup", "1",
                 "--batches", "1", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "ops.json").read_text(encoding="utf-8"))
    names = load_bundle(tiny_bundle).graph_names
    assert [(g["graph"], g["batch"]) for g in report["graphs"]] == [(n, b) for n in names for b in (1, 2)]
    table = (tmp_path / "ops.md").read_text(encoding="utf-8")
    assert "| Conv |" in table and "intra-op threads 1" in table
    assert capsys.readouterr().out == table
