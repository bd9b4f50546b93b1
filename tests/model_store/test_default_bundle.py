"""The default bundle shipped in model_store/: intact, served by default, and telling films apart.

These tests run the real model (not the tiny test bundle) through the real service, on real films.
"""

from __future__ import annotations

import base64
import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.contract.bundle import resolve_default_bundle
from app.contract.bundle_metadata import BundleMetadata
from app.contract.imaging import decode_bytes, decode_path
from app.factory import create_app
from app.settings import Settings
from training.metrics.segmentation import dice

STORE = Path(__file__).resolve().parents[2] / "model_store"
STRUCTURES = ("right_lung", "left_lung", "heart")


@pytest.fixture(scope="module")
def bundle_dir() -> Path:
    return resolve_default_bundle(STORE, None, None)


@pytest.fixture(scope="module")
def client(bundle_dir: Path) -> Iterator[TestClient]:
    settings = Settings(model_store=STORE, log_format="text", batch_buckets=[1], max_batch_size=1)
    with TestClient(create_app(settings)) as test_client:
        for _ in range(600):  # bounded wait for warm-up
            if test_client.get("/health/ready").status_code == 200:
                break
            time.sleep(0.1)
        assert test_client.get("/health/ready").status_code == 200
        yield test_client


def _scores(client: TestClient, path: Path, media_type: str) -> dict[str, float]:
    response = client.post(
        "/classify",
        params={"findings": ["normal", "pneumonia"]},
        content=path.read_bytes(),
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 200, response.text
    return {finding["name"]: finding["score"] for finding in response.json()["findings"]}


def test_default_bundle_verifies_and_is_what_the_service_serves(bundle_dir: Path, client: TestClient) -> None:
    metadata = BundleMetadata.verify(bundle_dir)
    assert (bundle_dir / "MODEL_CARD.md").read_text().count("not a medical device") >= 1
    served = client.get(f"/v2/models/{metadata.name}").json()
    assert metadata.version in served["versions"]
    assert (bundle_dir / "image_model.onnx").stat().st_size < 50 * 2**20  # committed size budget


def test_normal_film_and_pneumonia_films_score_apart(client: TestClient, shared_data: Path) -> None:
    normal = _scores(client, shared_data / "dicom" / "nih_gcp_DX_nofinding.dcm", "application/dicom")
    kermany = shared_data / "kermany-pediatric" / "images"
    pneumonia_films = sorted((kermany / "Bacterial").glob("*.jpg"))[:3]
    normal_films = sorted((kermany / "Normal").glob("*.jpg"))[:3]
    sick = [_scores(client, path, "image/jpeg") for path in pneumonia_films]
    healthy = [_scores(client, path, "image/jpeg") for path in normal_films]
    assert min(s["pneumonia"] for s in sick) > max(h["pneumonia"] for h in healthy)
    assert normal["normal"] > min(s["normal"] for s in sick)


def test_lung_and_heart_masks_overlay_the_organs(client: TestClient, shared_data: Path) -> None:
    path = shared_data / "dicom" / "siim_chest_jpeg_baseline.dcm"
    response = client.post(
        "/segment",
        params={"anatomy": list(STRUCTURES)},
        content=path.read_bytes(),
        headers={"Content-Type": "application/dicom"},
    )
    assert response.status_code == 200, response.text
    masks = {mask["name"]: mask for mask in response.json()["masks"]}
    assert set(masks) == set(STRUCTURES)
    width = masks["heart"]["width"]
    centre_x = {name: (mask["box"][0] + mask["box"][2]) / 2 / width for name, mask in masks.items()}
    # Radiological convention: the patient's right lung is on the image's LEFT.
    assert centre_x["right_lung"] < centre_x["heart"] < centre_x["left_lung"]
    for name in ("right_lung", "left_lung"):
        assert 0.08 < masks[name]["area_fraction"] < 0.4
    # The heart was learned from JSRT's digitised films alone: on this modern digital film its mask is
    # present and central but truncated (about 1 % of the image; the model card says so).
    assert 0.002 < masks["heart"]["area_fraction"] < 0.2
    assert np.isclose(masks["heart"]["height"], response.json()["input"]["rows"])


def test_only_validated_findings_are_marked_calibrated(
    client: TestClient, shared_data: Path, bundle_dir: Path
) -> None:
    """`calibrated` is true exactly for the findings whose pooled validation row has an AUROC above 0.5
    in the bundle's own evaluation (those got an operating point); fracture has no validation labels."""
    metrics = json.loads((bundle_dir / "metadata.json").read_text())["metrics"]["classification"]["all"]
    names = [*sorted(metrics), "fracture"]
    path = shared_data / "dicom" / "siim_chest_jpeg_baseline.dcm"
    response = client.post(
        "/classify",
        params={"findings": names},
        content=path.read_bytes(),
        headers={"Content-Type": "application/dicom"},
    )
    assert response.status_code == 200, response.text
    calibrated = {f["name"]: f["calibrated"] for f in response.json()["findings"]}
    assert calibrated == {name: name in metrics and metrics[name]["auroc"] > 0.5 for name in names}
    assert calibrated["effusion"] and calibrated["normal"] and not calibrated["fracture"]


def test_ground_reproduces_the_cards_pointing_game_on_the_nih_validation_boxes(
    client: TestClient, shared_data: Path, bundle_dir: Path
) -> None:
    """The NIH validation films with a radiologist box (3, all pneumonia): the peaks `/ground` returns
    hit exactly as many boxes as the card's pointing game on them says."""
    card = BundleMetadata.read(bundle_dir).document()["metrics"]["grounding"]["findings"]["all"]
    root = shared_data / "nih-cxr14"
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        boxed = [row for row in csv.DictReader(handle) if row["split"] == "val" and row["boxes"].strip()]
    hits = 0
    for row in boxed:
        box = json.loads(row["boxes"])[0]
        response = client.post(
            "/ground", params={"findings": [box["finding"]]}, content=(root / row["image"]).read_bytes(),
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 200, response.text
        finding = response.json()["findings"][0]
        x0, y0, x1, y1 = box["box"]
        hits += int(x0 <= finding["peak"]["x"] <= x1 and y0 <= finding["peak"]["y"] <= y1)
    assert len(boxed) == card["n"] == 3
    assert hits == round(card["pointing_game"] * card["n"])


def test_a_washed_out_film_is_segmented_like_any_other(client: TestClient, shared_data: Path) -> None:
    """JSRT JPCLN037 is stored with every pixel in 237..255; the service stretches it before inference."""
    jsrt = shared_data / "jsrt-scr"
    response = client.post(
        "/segment",
        params={"anatomy": list(STRUCTURES)},
        content=(jsrt / "images" / "JPCLN037.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    for mask in response.json()["masks"]:
        predicted = decode_bytes(base64.b64decode(mask["png_base64"]), "image/png").pixels >= 0.5
        expert = decode_path(jsrt / "masks" / mask["name"] / "JPCLN037.png").pixels >= 0.5
        assert dice(predicted, expert) > 0.8, mask["name"]
