"""Response contracts of /classify, /ground, /segment and the operations routes."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from tests.support.images import dicom_bytes, jpeg_bytes, png_bytes
from tests.support.rle import decode_coco_rle
from tests.support.service import HookedRunner, running_app

ENVELOPE = {"model", "input", "timing_ms", "batch_size"}


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.mark.parametrize("mode", ["multipart", "raw"])
async def test_classify_default_findings(client: httpx.AsyncClient, mode: str) -> None:
    data = png_bytes()
    if mode == "multipart":
        response = await client.post("/classify", files={"file": ("x.png", data, "image/png")})
    else:
        response = await client.post("/classify", content=data, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() >= ENVELOPE
    names = [f["name"] for f in body["findings"]]
    assert names == ["effusion", "pneumothorax", "pneumonia", "cardiomegaly", "atelectasis", "edema"]
    for finding in body["findings"]:
        assert 0.0 <= finding["score"] <= 1.0
        assert finding["positive"] == (finding["score"] >= finding["threshold"])
        assert finding["custom"] is False
    pneumonia = next(f for f in body["findings"] if f["name"] == "pneumonia")
    assert pneumonia["threshold"] == 0.42  # operating point from metadata
    # only pneumonia has a validated operating point; the others fall back to the bundle default
    assert {f["name"]: f["calibrated"] for f in body["findings"]} == {
        name: name == "pneumonia" for name in names
    }
    assert body["model"]["name"] == "tiny-cxr" and len(body["model"]["sha256"]) == 64
    assert (
        body["input"]["format"] == "png" and body["input"]["rows"] == 80 and body["input"]["columns"] == 120
    )
    assert set(body["timing_ms"]) == {"queue", "decode", "infer", "post"}
    assert body["batch_size"] == 1
    assert response.headers["x-request-id"] == body["request_id"]


async def test_classify_findings_filter_and_free_text(client: httpx.AsyncClient) -> None:
    params = {"findings": ["Pleural Effusion", "nodule", "patchy opacity in the left lower lobe"]}
    response = await client.post(
        "/classify",
        params=params,
        content=jpeg_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    findings = response.json()["findings"]
    assert [f["name"] for f in findings] == [
        "Pleural Effusion",
        "nodule",
        "patchy opacity in the left lower lobe",
    ]
    assert [f["custom"] for f in findings] == [True, False, True]


async def test_free_text_is_scored_through_the_text_encoder(client: httpx.AsyncClient) -> None:
    """Mean pooling makes "effusion effusion" embed exactly like the built-in query "effusion"."""
    params = {"findings": ["effusion", "effusion effusion", "pleural effusion"]}
    response = await client.post(
        "/classify",
        params=params,
        content=png_bytes(seed=3),
        headers={"Content-Type": "image/png"},
    )
    builtin, same_text, other_text = response.json()["findings"]
    assert (builtin["custom"], same_text["custom"], other_text["custom"]) == (False, True, True)
    assert same_text["score"] == pytest.approx(builtin["score"], abs=1e-5)
    assert other_text["score"] != pytest.approx(builtin["score"], abs=1e-5)


async def test_ground_maps_are_in_original_pixels(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ground",
        params={"findings": ["effusion", "opacity in the right lung"]},
        files={"file": ("x.dcm", dicom_bytes(), "application/dicom")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["input"]["format"] == "dicom" and body["input"]["transfer_syntax"] == "1.2.840.10008.1.2.1"
    for finding in body["findings"]:
        heatmap = finding["heatmap"]
        assert (heatmap["width"], heatmap["height"]) == (96, 64)
        pixels = decode_png(heatmap["png_base64"])
        assert pixels.shape == (64, 96)
        assert pixels[finding["peak"]["y"], finding["peak"]["x"]] == pixels.max() == 255
        x0, y0, x1, y1 = finding["box"]
        assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64
        assert x0 <= finding["peak"]["x"] < x1 and y0 <= finding["peak"]["y"] < y1
        scores = [a["score"] for a in finding["anatomy"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert body["findings"][1]["custom"] is True


async def test_segment_anatomy_and_finding_masks_with_rle(client: httpx.AsyncClient) -> None:
    params = {"anatomy": ["left_lung", "right_lung", "heart"], "findings": "effusion", "rle": "true"}
    response = await client.post(
        "/segment",
        params=params,
        content=png_bytes(100, 100),
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 200, response.text
    masks = {m["name"]: m for m in response.json()["masks"]}
    assert masks["effusion"]["kind"] == "finding" and masks["left_lung"]["kind"] == "anatomy"
    for mask in masks.values():
        bitmap = decode_png(mask["png_base64"]) > 0
        assert bitmap.shape == (mask["height"], mask["width"]) == (100, 100)
        assert np.array_equal(decode_coco_rle(mask["rle"]), bitmap)
        assert mask["area_fraction"] == pytest.approx(bitmap.mean(), abs=1e-6)
    # The tiny model places the patient's left lung on the image's right half.
    left_box, right_box = masks["left_lung"]["box"], masks["right_lung"]["box"]
    assert left_box[0] > 50 > right_box[2]


async def test_segment_without_rle_and_unknown_structure(client: httpx.AsyncClient) -> None:
    ok = await client.post(
        "/segment",
        params={"anatomy": "left_clavicle"},
        content=png_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert ok.status_code == 200 and ok.json()["masks"][0].get("rle") is None
    bad = await client.post(
        "/segment", params={"anatomy": "spleen"}, content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_name"


async def test_health_and_oip_routes(client: httpx.AsyncClient) -> None:
    for path in (
        "/health/live",
        "/health/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/tiny-cxr/ready",
    ):
        assert (await client.get(path)).status_code == 200, path
    meta = (await client.get("/v2/models/tiny-cxr")).json()
    assert (
        meta["name"] == "tiny-cxr"
        and meta["versions"] == ["0.0.1"]
        and meta["platform"] == "onnxruntime_onnx"
    )
    assert {i["name"] for i in meta["inputs"]} == {"image", "pathology_queries", "anatomy_queries"}
    assert {"name": "image", "datatype": "FP32", "shape": [-1, 3, 64, 64]} in meta["inputs"]
    for unknown in ("/v2/models/other", "/v2/models/other/ready"):
        missing = await client.get(unknown)
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_both_body_kinds(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    content = spec["paths"]["/classify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/dicom", "image/png", "image/jpeg"} <= content.keys()


async def test_ready_is_503_until_every_bucket_is_warm(make_app: Callable[..., FastAPI]) -> None:
    """A runner whose warm-up blocks keeps /health/ready at 503 and inference at 503 model_not_ready."""
    import threading

    release = threading.Event()

    class GatedRunner(HookedRunner):
        def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
            release.wait(timeout=10)

    app = make_app(runner_factory=lambda bundle, settings: GatedRunner(bundle))
    async with running_app(app, ready=False) as client:
        assert (await client.get("/health/live")).status_code == 200
        not_ready = await client.get("/health/ready")
        assert not_ready.status_code == 503 and not_ready.json()["code"] == "model_not_ready"
        assert (await client.get("/v2/health/ready")).status_code == 503
        refused = await client.post("/classify", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert refused.status_code == 503 and refused.json()["code"] == "model_not_ready"
        release.set()
        from tests.support.service import wait_ready

        await wait_ready(client)
        ok = await client.post("/classify", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert ok.status_code == 200


async def test_api_key_guards_inference_only(make_app: Callable[..., FastAPI]) -> None:
    async with running_app(make_app(api_keys=["s3cret-key", "other-key"])) as client:
        body, headers = png_bytes(), {"Content-Type": "image/png"}
        missing = await client.post("/classify", content=body, headers=headers)
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        wrong = await client.post("/classify", content=body, headers={**headers, "X-API-Key": "s3cret-kez"})
        assert wrong.status_code == 401
        assert (
            await client.post("/classify", content=body, headers={**headers, "X-API-Key": "other-key"})
        ).status_code == 200
        bearer = {**headers, "Authorization": "Bearer s3cret-key"}
        assert (await client.post("/ground", content=body, headers=bearer)).status_code == 200
        for open_path in ("/health/live", "/health/ready", "/metrics", "/v2/health/ready"):
            assert (await client.get(open_path)).status_code == 200, open_path


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/health/live", headers={"X-Request-ID": "a b\x7f<script>"})
    assert unsafe.headers["x-request-id"] != "a b\x7f<script>" and len(unsafe.headers["x-request-id"]) == 32


async def test_metrics_exposition_names(client: httpx.AsyncClient) -> None:
    await client.post("/classify", content=dicom_bytes(), headers={"Content-Type": "application/dicom"})
    text = (await client.get("/metrics")).text
    for name in (
        "medslip_http_request_duration_seconds_bucket",
        "medslip_queue_wait_seconds_bucket",
        "medslip_stage_duration_seconds_bucket",
        "medslip_batch_size_bucket",
        "medslip_batches_total",
        "medslip_queue_depth",
        "medslip_http_requests_in_flight",
        "medslip_model_info",
        "medslip_model_ready 1.0",
    ):
        assert name in text, name
    assert (
        'medslip_dicom_inputs_total{photometric="MONOCHROME2",transfer_syntax="explicit_vr_le"} 1.0' in text
    )
    assert 'endpoint="/classify",status_class="2xx"' in text
