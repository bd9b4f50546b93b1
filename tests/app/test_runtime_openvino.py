"""The OpenVINO runtime: the runtime choice, fp32 parity with ONNX Runtime graph by graph, bf16 on the real
bundle where the CPU computes it natively, and the service started on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from app.contract.bundle import load_bundle, resolve_default_bundle
from app.contract.graphs import ENDPOINT_OUTPUTS, GRAPH_SIGNATURES
from app.contract.imaging import decode_path
from app.runtime import ModelOutputs, OrtImageModel
from app.runtime_choice import ONNXRUNTIME, OPENVINO, choose_runtime
from app.runtime_openvino import openvino_available, resolve_precision
from app.settings import Settings
from tests.support.images import png_bytes
from tests.support.service import running_app

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="the openvino package is not installed")
STORE = Path(__file__).resolve().parents[2] / "model_store"


def _choose(runtime: str, device: str = "auto", precision: str = "auto", *, available: bool = True) -> str:
    return choose_runtime(runtime, device, precision, available=lambda: available)


def test_onnx_runtime_unless_openvino_is_asked_for() -> None:
    for precision in ("auto", "stored", "fp32", "int8"):
        assert _choose("onnxruntime", precision=precision, available=True) == ONNXRUNTIME
    for precision in ("auto", "mixed", "bf16", "fp32"):
        assert _choose("openvino", device="cpu", precision=precision) == OPENVINO
    assert Settings(model_dir=Path("unused")).runtime == ONNXRUNTIME  # the default


@pytest.mark.parametrize(
    "case",
    [
        ("openvino", "auto", "auto", False, "not installed"),
        ("openvino", "cuda", "auto", True, "runs on the CPU"),
        ("openvino", "auto", "int8", True, "ONNX Runtime's"),
        ("openvino", "auto", "stored", True, "ONNX Runtime's"),
        ("onnxruntime", "auto", "bf16", True, "needs MEDSLIP_RUNTIME=openvino"),
        ("onnxruntime", "auto", "mixed", True, "needs MEDSLIP_RUNTIME=openvino"),
    ],
)
def test_a_choice_that_cannot_be_honoured_is_refused(case: tuple[str, str, str, bool, str]) -> None:
    runtime, device, precision, available, message = case
    with pytest.raises(RuntimeError, match=message):
        _choose(runtime, device, precision, available=available)


def test_the_app_factory_builds_the_chosen_runtime_or_refuses(tiny_bundle: Path) -> None:
    from app.factory import default_runner

    bundle = load_bundle(tiny_bundle)
    settings = Settings(model_dir=tiny_bundle, intra_op_threads=1)
    assert isinstance(default_runner(bundle, settings), OrtImageModel)
    with pytest.raises(RuntimeError, match="ONNX Runtime's"):
        default_runner(bundle, Settings(model_dir=tiny_bundle, runtime="openvino", precision="int8"))
    with pytest.raises(RuntimeError, match="needs MEDSLIP_RUNTIME=openvino"):
        default_runner(bundle, Settings(model_dir=tiny_bundle, precision="bf16"))
    if openvino_available():
        from app.runtime_openvino import OpenVinoImageModel

        chosen = default_runner(bundle, Settings(model_dir=tiny_bundle, runtime="openvino", precision="fp32"))
        assert isinstance(chosen, OpenVinoImageModel) and chosen.precision == "fp32"


def test_precision_auto_is_mixed_only_where_bf16_is_native() -> None:
    assert resolve_precision("auto", native=True) == "mixed"
    assert resolve_precision("auto", native=False) == "fp32"
    assert resolve_precision("fp32", native=True) == "fp32"
    for precision in ("mixed", "bf16"):
        with pytest.raises(RuntimeError, match="no native bf16"):
            resolve_precision(precision, native=False)
    with pytest.raises(RuntimeError, match="not an OpenVINO precision"):
        resolve_precision("int8", native=True)


def _assert_close(want: ModelOutputs, got: ModelOutputs, atol: float) -> None:
    for name in ModelOutputs.__dataclass_fields__:
        expected, actual = getattr(want, name), getattr(got, name)
        assert (expected is None) == (actual is None), name
        if expected is not None:
            assert actual.shape == expected.shape and actual.dtype == np.float32, name
            np.testing.assert_allclose(actual, expected, atol=atol, rtol=0, err_msg=name)


@needs_openvino
def test_fp32_matches_onnx_runtime_graph_by_graph(tiny_bundle: Path) -> None:
    from app.runtime_openvino import OpenVinoImageModel

    bundle = load_bundle(tiny_bundle)
    reference = OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="fp32")
    runner = OpenVinoImageModel(bundle, threads=1, precision="fp32")
    assert runner.provider == "OpenVINO-CPU-fp32" and set(runner.graphs) == set(bundle.graph_names)
    images = np.random.default_rng(5).normal(size=(3, 3, 64, 64)).astype(np.float32)  # (B, 3, S, S)
    extra = np.concatenate([bundle.pathology_queries, bundle.pathology_queries[:2]])  # (77, T): free text
    for outputs in (*ENDPOINT_OUTPUTS.values(), *(signature[1] for signature in GRAPH_SIGNATURES.values())):
        for queries in (bundle.pathology_queries, extra):
            want = reference.run(images, queries, bundle.anatomy_queries, outputs=outputs)
            got = runner.run(images, queries, bundle.anatomy_queries, outputs=outputs)
            _assert_close(want, got, atol=1e-4)  # same graph and same outputs, the cheapest graph again
    single = runner.run(images[:1], bundle.pathology_queries, bundle.anatomy_queries)
    assert single.pathology_probs.shape == (1, bundle.pathology_queries.shape[0])  # another batch size


@needs_openvino
def test_outputs_are_not_overwritten_by_the_next_run(tiny_bundle: Path) -> None:
    from app.runtime_openvino import OpenVinoImageModel

    bundle = load_bundle(tiny_bundle)
    runner = OpenVinoImageModel(bundle, threads=1, precision="fp32")
    rng = np.random.default_rng(6)
    first_images, second_images = (rng.normal(size=(1, 3, 64, 64)).astype(np.float32) for _ in range(2))
    first = runner.run(first_images, bundle.pathology_queries, bundle.anatomy_queries)
    kept = first.pathology_probs.copy()
    runner.run(second_images, bundle.pathology_queries, bundle.anatomy_queries)
    np.testing.assert_array_equal(first.pathology_probs, kept)


@needs_openvino
@pytest.mark.parametrize("precision", ["mixed", "bf16"])
def test_bf16_on_the_default_bundle_stays_close_to_fp32(shared_data: Path, precision: str) -> None:
    from app.runtime_openvino import OpenVinoImageModel, native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (AMX or AVX512-BF16)")
    bundle = load_bundle(resolve_default_bundle(STORE, None, None))
    films = [shared_data / "dicom" / "nih_gcp_DX_nofinding.dcm",
             *sorted((shared_data / "kermany-pediatric" / "images" / "Bacterial").glob("*.jpg"))[:3]]
    images = np.stack([bundle.preprocessing.apply(decode_path(path).pixels)[0] for path in films])
    reference = OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="fp32")
    runner = OpenVinoImageModel(bundle, threads=1, precision=precision)
    assert runner.provider == f"OpenVINO-CPU-{precision}"
    want = reference.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    got = runner.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    assert float(np.abs(got.pathology_probs - want.pathology_probs).max()) < 0.02
    assert got.pathology_maps is not None and want.pathology_maps is not None
    a, b = (m.reshape(-1, m.shape[-2] * m.shape[-1]) for m in (got.pathology_maps, want.pathology_maps))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # (B*Q,)
    assert float(cosine.min()) > 0.99
    assert got.segmentation_logits is not None and want.segmentation_logits is not None
    masks_got, masks_want = got.segmentation_logits > 0, want.segmentation_logits > 0  # (B, K, S, S)
    overlap = (masks_got & masks_want).sum(axis=(2, 3))
    dice = 2 * overlap / np.maximum(masks_got.sum(axis=(2, 3)) + masks_want.sum(axis=(2, 3)), 1)
    assert float(dice[:, :3].min()) > 0.97  # lungs and heart: the same masks


@needs_openvino
def test_mixed_runs_each_graph_as_an_image_part_then_a_query_part(tiny_bundle: Path) -> None:
    from app.runtime_openvino import OpenVinoImageModel, native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (AMX or AVX512-BF16)")
    bundle = load_bundle(tiny_bundle)
    runner = OpenVinoImageModel(bundle, threads=1, precision="mixed")
    assert all(len(graph.parts) == 2 for graph in runner._graphs.values())
    assert set(runner.precisions.values()) == {"mixed (fp32 weights)"}
    reference = OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="fp32")
    images = np.random.default_rng(8).normal(size=(2, 3, 64, 64)).astype(np.float32)  # (B, 3, S, S)
    extra = np.concatenate([bundle.pathology_queries, bundle.pathology_queries[:2]])  # (77, T)
    for outputs in ENDPOINT_OUTPUTS.values():
        want = reference.run(images, extra, bundle.anatomy_queries, outputs=outputs)
        got = runner.run(images, extra, bundle.anatomy_queries, outputs=outputs)
        _assert_close(want, got, atol=0.05)  # bf16 film-side layers: close, not equal


@needs_openvino
async def test_the_service_runs_on_openvino(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(runtime="openvino", precision="fp32")
    async with running_app(app) as client:
        headers = {"Content-Type": "image/png"}
        for endpoint, params in (("/classify", {}), ("/ground", {}), ("/segment", {"anatomy": "heart"})):
            response = await client.post(endpoint, params=params, content=png_bytes(), headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["model"]["provider"] == "OpenVINO-CPU-fp32"


@needs_openvino
def test_mixed_without_a_split_point_keeps_the_query_layers_in_fp32(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import runtime_openvino

    if not runtime_openvino.native_bf16():
        pytest.skip("this CPU has no native bf16 (AMX or AVX512-BF16)")
    monkeypatch.setattr(runtime_openvino, "split_at_queries", lambda *args: None)
    runner = runtime_openvino.OpenVinoImageModel(load_bundle(tiny_bundle), threads=1, precision="mixed")
    assert set(runner.precisions.values()) == {"fp32 (fp32 weights)"}  # every graph reads the queries
