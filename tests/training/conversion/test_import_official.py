"""Import of the released checkpoint layout: key/shape checks, book recomputation, CLI output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.training.tiny_bert import write_tiny_bert
from training.conversion.import_official import (
    CheckpointMismatchError,
    check_state_dict,
    import_official,
    infer_config,
    main,
)
from training.model import MeDSLIP, build_query_books, create_model, load_checkpoint, load_descriptions
from training.model.text_encoder import TextEncoder


def _random_official_state_dict(manifest: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Random tensors with the manifest's names/shapes/dtypes (running variances kept positive)."""
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for name, spec in manifest.items():
        shape = tuple(int(size) for size in spec["shape"])
        if spec["dtype"] == "int64":
            state[name] = torch.tensor(100, dtype=torch.int64).reshape(shape)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * 0.05
    return state


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("bert768"), hidden_size=768)


def _cli(checkpoint: Path, bert_dir: Path, out: Path) -> list[str]:
    """The import command line, with the vocabulary's descriptions written beside the checkpoint."""
    descriptions = checkpoint.parent / "descriptions.json"
    descriptions.write_text(json.dumps(load_descriptions()))
    return ["--checkpoint", str(checkpoint), "--text-encoder", str(bert_dir), "--descriptions",
            str(descriptions), "--out", str(out)]


def test_cli_import_matches_directly_loaded_model(shared_data: Path, tmp_path: Path, bert_dir: Path) -> None:
    manifest_path = shared_data.parent / "docs" / "medslip_official_state_dict.json"
    if not manifest_path.is_file():
        pytest.skip("../shared/docs/medslip_official_state_dict.json is absent")
    official = _random_official_state_dict(json.loads(manifest_path.read_text())["state_dict"])
    checkpoint = tmp_path / "MeDSLIP_resnet50.pth"
    torch.save({"model": official, "epoch": 99}, checkpoint)
    out = tmp_path / "imported.pt"
    assert main([*_cli(checkpoint, bert_dir, out), "--pooling", "cls"]) == 0
    imported, extra = load_checkpoint(out)
    assert extra["source"]["kind"] == "official-release"
    assert imported.config.trunk == "resnet50" and imported.config.text_dim == 768
    assert imported.config.text_pooling == "cls" and not imported.config.text_normalize

    encoder = TextEncoder.from_pretrained(bert_dir, pooling="cls", normalize=False)
    pathology_book, anatomy_book = build_query_books(encoder, load_descriptions())
    reference = create_model("medslip_resnet50", text_dim=768).eval()
    reference.load_state_dict({**official, "pathology_book": pathology_book, "anatomy_book": anatomy_book})
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = imported(images), reference(images)
    assert torch.allclose(imported.pathology_book, pathology_book)
    assert torch.allclose(got.pathology_logits, want.pathology_logits, atol=1e-5)
    assert torch.allclose(got.anatomy_maps, want.anatomy_maps, atol=1e-6)


def test_mismatches_are_listed(tmp_path: Path, bert_dir: Path) -> None:
    model = create_model("medslip_resnet18", text_dim=768, n_layers=1)
    state = {k: v for k, v in model.state_dict().items() if k not in ("pathology_book", "anatomy_book")}
    del state["mask_generator.bias"]
    state["classifier_pathology.weight"] = torch.zeros(3, 256)
    state["extra_head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as caught:
        check_state_dict(state, model)
    message = str(caught.value)
    assert "1 missing keys: mask_generator.bias" in message
    assert "1 unexpected keys: extra_head.weight" in message
    assert "classifier_pathology.weight (3, 256) != (2, 256)" in message

    checkpoint = tmp_path / "bad.pth"
    torch.save({"model": state}, checkpoint)
    encoder = TextEncoder.from_pretrained(bert_dir, pooling="cls", normalize=False)
    with pytest.raises(CheckpointMismatchError):
        import_official(checkpoint, encoder, load_descriptions())
    out = tmp_path / "never.pt"
    assert main(_cli(checkpoint, bert_dir, out)) == 1 and not out.exists()


def test_ddp_prefix_and_resnet18_layout_are_understood(tmp_path: Path, bert_dir: Path) -> None:
    model = create_model("medslip_resnet18", text_dim=768, n_layers=2)
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("_book")}
    checkpoint = tmp_path / "ddp.pth"
    torch.save({"model": state}, checkpoint)
    encoder = TextEncoder.from_pretrained(bert_dir, pooling="cls", normalize=False)
    imported = import_official(checkpoint, encoder, load_descriptions())
    assert isinstance(imported, MeDSLIP)
    assert imported.config.trunk == "resnet18" and imported.config.n_layers == 2
    assert torch.equal(imported.mask_generator.weight, model.mask_generator.weight)


def test_text_width_must_match(tmp_path: Path) -> None:
    narrow = write_tiny_bert(tmp_path / "bert32", hidden_size=32)
    model = create_model("medslip_resnet18", text_dim=768, n_layers=1)
    checkpoint = tmp_path / "c.pth"
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("_book")}
    torch.save({"model": state}, checkpoint)
    encoder = TextEncoder.from_pretrained(narrow, pooling="cls", normalize=False)
    with pytest.raises(CheckpointMismatchError, match="text encoder width 32 != checkpoint query width 768"):
        import_official(checkpoint, encoder, load_descriptions())


@pytest.mark.parametrize("name", ["medslip_resnet18", "medslip_resnet34", "medslip_resnet50"])
def test_infer_config_reads_the_trunk_off_the_keys(name: str) -> None:
    model = create_model(name, n_layers=1, image_size=64)
    assert infer_config(model.state_dict()).trunk == model.config.trunk
