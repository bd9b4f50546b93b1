"""Bundle loading, checksum verification and default-bundle resolution in model_store/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.contract.bundle import BundleError, load_bundle, resolve_default_bundle
from tests.fixtures.tiny_bundle import build_tiny_bundle


def test_tiny_bundle_loads_and_follows_contract(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.name == "tiny-cxr" and bundle.version == "0.0.1" and bundle.image_size == 64
    assert bundle.pathology_queries.shape == (75, 16) and bundle.anatomy_queries.shape == (51, 16)
    assert bundle.structures == ("right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle")
    assert bundle.threshold_for("pneumonia") == 0.42 and bundle.threshold_for("effusion") == 0.5
    assert bundle.text_encoder is not None and bundle.text_encoder.dim == 16
    assert (
        bundle.sha256 == json.loads((tiny_bundle / "metadata.json").read_text())["files"]["image_model.onnx"]
    )


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path)
    with (root / "pathology_queries.npy").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"sha256 mismatch for 'pathology_queries\.npy'"):
        load_bundle(root)
    assert load_bundle(root, verify=False).name == "tiny-cxr"


def test_missing_file_and_bad_schema(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path)
    (root / "MODEL_CARD.md").unlink()
    with pytest.raises(BundleError, match=r"MODEL_CARD\.md"):
        load_bundle(root)
    meta = json.loads((root / "metadata.json").read_text())
    (root / "metadata.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(BundleError, match="schema_version"):
        load_bundle(root)


def test_default_bundle_is_highest_version_of_single_name(tmp_path: Path) -> None:
    build_tiny_bundle(tmp_path, version="1.9.0")
    build_tiny_bundle(tmp_path, version="1.10.0")
    build_tiny_bundle(tmp_path, version="1.2.0", with_text_encoder=False)
    assert (tmp_path / "text-encoders").is_dir()  # skipped as a model name
    assert resolve_default_bundle(tmp_path) == tmp_path / "tiny-cxr" / "1.10.0"
    assert resolve_default_bundle(tmp_path, version="1.9.0") == tmp_path / "tiny-cxr" / "1.9.0"
    with pytest.raises(BundleError, match="not found"):
        resolve_default_bundle(tmp_path, version="3.0.0")


def test_several_model_names_need_a_choice(tmp_path: Path) -> None:
    build_tiny_bundle(tmp_path, name="a-model")
    shutil.copytree(tmp_path / "a-model", tmp_path / "b-model")
    with pytest.raises(BundleError, match="MEDSLIP_MODEL_NAME"):
        resolve_default_bundle(tmp_path)
    assert resolve_default_bundle(tmp_path, name="b-model") == tmp_path / "b-model" / "0.0.1"
    with pytest.raises(BundleError, match="does not exist"):
        resolve_default_bundle(tmp_path / "absent")


async def test_bundle_without_text_encoder_refuses_free_text(tmp_path: Path) -> None:
    from app.factory import create_app
    from app.settings import Settings
    from tests.support.images import png_bytes
    from tests.support.service import running_app

    root = build_tiny_bundle(tmp_path, with_text_encoder=False)
    assert load_bundle(root).text_encoder is None
    async with running_app(create_app(Settings(model_dir=root, intra_op_threads=1))) as client:
        headers = {"Content-Type": "image/png"}
        builtin = await client.post(
            "/classify", params={"findings": "edema"}, content=png_bytes(), headers=headers
        )
        assert builtin.status_code == 200
        free = await client.post(
            "/classify", params={"findings": "hazy base"}, content=png_bytes(), headers=headers
        )
        assert free.status_code == 422 and free.json()["code"] == "text_encoder_unavailable"
