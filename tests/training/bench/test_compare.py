"""`medslip-bench compare`: round-robin interleaving, ratio arithmetic, targets and the result's shape
(tiny bundle and tiny models; no timing is asserted)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.contract.bundle import load_bundle
from app.memory import proc_status_kib
from app.runtime_openvino import openvino_available
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from tests.support.training.tiny_models import tiny_model
from training.bench.compare import batch_inputs, run_compare
from training.bench.compare_candidates import http_candidates
from training.bench.compare_report import analyse, markdown
from training.bench.interleave import Candidate, interleave
from training.export.graph import ImageModelGraph
from training.host import cpu_model
from training.model import SegmentationModel


def test_interleave_rotates_the_start_each_round() -> None:
    calls: list[str] = []

    def record(name: str) -> Callable[[], object]:
        return lambda: calls.append(name)

    candidates = [Candidate(name, "g", 1, record(name)) for name in "abc"]
    ticks = itertools.count()
    samples, order = interleave(candidates, 4, warmup=1, clock=lambda: float(next(ticks)))
    assert calls[:3] == ["a", "b", "c"]  # the untimed warm-up round
    assert order == list("abc" "bca" "cab" "abc")
    assert calls[3:] == order
    assert {name: len(values) for name, values in samples.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(value == 1000.0 for values in samples.values() for value in values)  # one tick each


def _p50() -> dict[str, float]:
    return {
        "ort:classify_model:b1": 40.0,
        "ort:image_model:b1": 100.0,
        "ort:classify_model:b8": 300.0,
        "ort:image_model:b8": 800.0,
        "ort-stored:image_model:b1": 130.0,
        "ort-stored:image_model:b8": 1000.0,
        "eager:classify_model:b1": 100.0,
        "eager:image_model:b1": 150.0,
        "eager:classify_model:b8": 900.0,
        "eager:image_model:b8": 1600.0,
        "official:b1": 200.0,
        "official:b8": 1600.0,
        "http:/classify": 60.0,
        "http:/ground": 125.0,
        "decode:nih_gcp_DX_nofinding": 10.0,
        "decode:wg04_RG2_J2KR": 20.0,
    }


def test_ratio_arithmetic_and_targets() -> None:
    server_ms = {"classify": {"queue": 0.1, "decode": 12.0, "infer": 41.0, "post": 2.0},
                 "ground": {"queue": 0.1, "decode": 12.0, "infer": 101.0, "post": 5.0}}
    result = analyse(_p50(), (1, 8), ("classify_model", "image_model"), rss_mb=700.0, server_ms=server_ms)
    ratios = result["ratios"]
    assert ratios["classify_vs_official_b1"] == pytest.approx(0.2)
    assert ratios["eager_over_ort"]["classify_model"] == {"b1": 2.5, "b8": 3.0}
    assert ratios["eager_over_ort"]["image_model"] == {"b1": 1.5, "b8": 2.0}
    assert ratios["stored_over_auto_full"] == {"b1": 1.3, "b8": 1.25}
    assert ratios["official_over_ort"]["image_model"]["b8"] == 2.0
    classify, ground = result["http"]["classify"], result["http"]["ground"]
    assert classify["graph"] == "classify_model" and ground["graph"] == "image_model"
    assert classify["server_added_ms"] == pytest.approx(8.0)  # 60 - 40 - 10 - 2
    assert classify["server_overhead_pct"] == pytest.approx(20.0)
    assert ground["server_overhead_pct"] == pytest.approx(10.0)  # (125 - 100 - 10 - 5) / 100
    assert ground["post_ms"] == 5.0 and ground["server_reported_ms"]["infer"] == 101.0
    assert classify["http_over_bare"] == pytest.approx(1.5)
    assert result["decode"]["wg04_RG2_J2KR"] == {"ms": 20.0, "over_classify_b1": 0.5}
    met = {t["target"]: t["met"] for t in result["targets"]}
    assert met["/classify bare <= 0.5x official-architecture eager (batch 1)"] is True
    assert met["ORT >= 2x faster than eager, image_model, batch 1"] is False
    assert met["ORT >= 2x faster than eager, image_model, batch 8"] is True
    assert met["HTTP overhead at concurrency 1 <= 10 %, /classify"] is False
    assert met["HTTP overhead at concurrency 1 <= 10 %, /ground"] is True
    assert met["decode + preprocess of the 2k JPEG 2000 lossless film <= 1x /classify model"] is True
    assert met["service RSS after warm-up <= 1 GB (MB)"] is True
    assert len(met) == 1 + 4 + 2 + 1 + 1


def test_routing_compares_the_pooled_server_with_the_default() -> None:
    server_ms = {"classify": {"decode": 6.0, "post": 0.1}, "http-pool:/classify": {"decode": 14.0}}
    p50 = {**_p50(), "http-pool:/classify": 75.0}
    routing = analyse(p50, (1,), ("classify_model",), server_ms=server_ms)["routing"]
    assert routing["pool_over_inline"] == pytest.approx(1.25)  # 75 / 60
    assert (routing["inline_decode_reported_ms"], routing["pool_decode_reported_ms"]) == (6.0, 14.0)
    assert analyse(_p50(), (1,), ("classify_model",))["routing"]["pool_over_inline"] is None


def test_upload_compares_multipart_with_the_raw_body() -> None:
    p50 = {**_p50(), "http-multipart:/classify": 66.0}
    result = analyse(p50, (1,), ("classify_model",))
    assert result["upload"]["multipart_over_raw"] == pytest.approx(1.1)  # 66 / 60
    assert analyse(_p50(), (1,), ("classify_model",))["upload"]["multipart_over_raw"] is None


def test_floor_splits_the_classify_overhead_into_stack_and_service() -> None:
    server_ms = {"classify": {"decode": 12.0, "post": 2.0}}
    p50 = {**_p50(), "http-floor:/floor": 3.0}
    result = analyse(p50, (1,), ("classify_model",), server_ms=server_ms)
    floor = result["http_floor"]
    assert floor["floor_ms"] == 3.0
    assert floor["floor_pct_of_classify_bare"] == pytest.approx(7.5)  # 3 / 40
    assert floor["service_beyond_floor_ms"] == pytest.approx(5.0)  # (60 - 40 - 10 - 2) - 3
    assert "HTTP stack floor (`app.bench_floor`" in markdown({**_envelope(), **result})
    absent = analyse(_p50(), (1,), ("classify_model",), server_ms=server_ms)
    assert absent["http_floor"] == {"floor_ms": None, "floor_pct_of_classify_bare": None,
                                    "service_beyond_floor_ms": None}
    assert "HTTP stack floor" not in markdown({**_envelope(), **absent})


def _envelope() -> dict[str, object]:
    """What `run_compare` puts around `analyse`'s result, for rendering it."""
    hardware = {"cpu_model": "cpu", "cores": 2, "machine": "x86_64", "threads": 2, "python": "3.11",
                "onnxruntime": "1", "torch": "2", "load_average": [0.0]}
    bundle = {"dir": "b", "name": "n", "version": "1", "precisions": {}, "stored_precisions": {},
              "openvino": None}
    return {"created": "now", "command": "medslip-bench compare", "hardware": hardware,
            "load_average_end": [0.0], "bundle": bundle, "rounds": 1, "batches": [1],
            "http_film": "nih_gcp_DX_nofinding", "candidates": {}, "memory": {}}


def test_missing_candidates_are_not_measured_not_failed() -> None:
    p50 = {"ort:classify_model:b1": 40.0, "official:b1": 100.0}
    result = analyse(p50, (1,), ("classify_model",))
    met = {t["target"]: t["met"] for t in result["targets"]}
    assert met["/classify bare <= 0.5x official-architecture eager (batch 1)"] is True
    assert met["service RSS after warm-up <= 1 GB (MB)"] is None
    assert result["http"]["classify"]["server_overhead_pct"] is None


def test_openvino_ratios_and_its_server_overhead_are_against_its_own_bare_graph() -> None:
    p50 = {"ort:classify_model:b1": 16.0, "openvino:classify_model:b1": 4.0, "eager:classify_model:b1": 24.0,
           "http-openvino:/classify": 15.0, "http:/classify": 30.0, "decode:nih_gcp_DX_nofinding": 7.0}
    server_ms = {"http-openvino:/classify": {"post": 1.0}, "classify": {"post": 1.0}}
    result = analyse(p50, (1,), ("classify_model",), server_ms=server_ms)
    assert result["ratios"]["ort_over_openvino"]["classify_model"]["b1"] == pytest.approx(4.0)
    assert result["ratios"]["eager_over_openvino"]["classify_model"]["b1"] == pytest.approx(6.0)
    served = result["http_openvino"]["classify"]
    assert served["bare_ms"] == 4.0 and served["server_added_ms"] == pytest.approx(15.0 - 4.0 - 7.0 - 1.0)
    assert result["http"]["classify"]["server_added_ms"] == pytest.approx(30.0 - 16.0 - 7.0 - 1.0)
    assert result["http_openvino"]["ground"]["http_ms"] is None  # not measured, not failed


def test_run_compare_on_tiny_models(tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    model = tiny_model()
    segmentation = SegmentationModel(model.res_features, decoder_channels=(16, 8, 8, 8), freeze_trunk=True)
    full = ImageModelGraph(model, segmentation.eval(), "last")
    bundle = load_bundle(tiny_bundle)
    assert bundle.pathology_queries.shape == (75, 16) and bundle.anatomy_queries.shape == (51, 16)
    result = run_compare(
        tiny_bundle, full, tiny_model(1), {}, threads=1, rounds=2, batches=(1, 2), http=False
    )
    names = set(result["candidates"])
    graphs = ("classify_model", "image_model")
    expected = {f"{kind}:{graph}:b{b}" for kind in ("ort", "eager") for graph in graphs for b in (1, 2)}
    expected |= {"ort-stored:image_model:b1", "ort-stored:image_model:b2", "official:b1", "official:b2"}
    if openvino_available():  # the same graphs on OpenVINO, with their own ratios and report section
        expected |= {f"openvino:{graph}:b{b}" for graph in graphs for b in (1, 2)}
    assert names == expected
    assert all(len(row["samples"]) == 2 and row["p50"] > 0 for row in result["candidates"].values())
    assert len(result["order_first_rounds"]) == 2 * len(expected)
    assert result["hardware"]["threads"] == 1 and result["hardware"]["cpu_model"] == cpu_model()
    assert result["ratios"]["eager_over_ort"]["image_model"]["b2"] > 0
    result.update(command="medslip-bench compare", note="")
    json.dumps(result)  # JSON-safe
    text = markdown(result)
    assert "| `ort:classify_model:b1` | 1 |" in text and "## Targets" in text
    if openvino_available():
        assert result["ratios"]["ort_over_openvino"]["classify_model"]["b1"] > 0
        assert "## OpenVINO (OpenVINO-CPU-" in text and "| PyTorch eager / OpenVINO, `image_model` |" in text


def test_batch_inputs_cycle_through_images() -> None:
    import numpy as np

    images = [np.full((3, 4, 4), i, np.float32) for i in range(3)]
    batches = batch_inputs(images, (1, 4))
    assert batches[1].shape == (1, 3, 4, 4) and [int(x[0, 0, 0]) for x in batches[4]] == [0, 1, 2, 0]


def test_proc_status_reads_own_rss() -> None:
    import os

    values = proc_status_kib(os.getpid())
    if not values:
        pytest.skip("no /proc on this host")
    assert values["VmRSS"] > 0 and values["VmHWM"] >= values["VmRSS"]


def test_http_candidates_record_the_service_timings(tiny_bundle: Path) -> None:  # noqa: F811
    import threading
    import time

    import httpx
    import uvicorn

    from app.factory import create_app
    from app.settings import Settings
    from tests.app.test_serve_process import free_port
    from tests.support.images import dicom_bytes

    port = free_port()
    app = create_app(Settings(model_dir=tiny_bundle, intra_op_threads=1, decode_processes=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    timings: dict[str, list[dict[str, float]]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            for _ in range(300):
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            candidates = http_candidates(client, dicom_bytes(), timings)
            candidates += http_candidates(client, dicom_bytes(), timings, "http-pool", ("classify",))
            candidates += http_candidates(
                client, dicom_bytes(), timings, "http-multipart", ("classify",), multipart=True
            )
            samples, _ = interleave(candidates, 2)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    groups = ("classify", "ground", "http-pool:/classify", "http-multipart:/classify")
    assert set(samples) == {"http:/classify", "http:/ground"} | set(groups[2:])
    assert [len(timings[e]) for e in groups] == [3, 3, 3, 3]  # warm-up round + 2
    row = timings["ground"][-1]
    assert {"queue", "decode", "infer", "post"} <= set(row) and row["response_kb"] > 0
