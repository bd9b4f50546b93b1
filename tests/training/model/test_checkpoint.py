"""Checkpoint format: round trip of weights, books, config and extra entries."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from training.model import create_model, load_checkpoint, model_from_state, save_checkpoint


def test_round_trip_restores_identical_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(
        "medslip_resnet18",
        image_size=64,
        d_model=32,
        ffn_dim=64,
        n_layers=1,
        text_dim=8,
        pathology_book=torch.randn(75, 8),
        anatomy_book=torch.randn(51, 8),
    ).eval()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, epoch=3, loss_config={"icl_weight": 0.5})
    restored, extra = load_checkpoint(path)
    assert extra == {"epoch": 3, "loss_config": {"icl_weight": 0.5}}
    assert restored.config == model.config
    assert not restored.training
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(restored(images).pathology_logits, model(images).pathology_logits)
    assert torch.equal(restored.anatomy_book, model.anatomy_book)
    assert not (tmp_path / "ckpt.pt.partial").exists()


def test_payload_layout_is_plain(tmp_path: Path) -> None:
    model = create_model("medslip_resnet18", n_layers=1)
    path = tmp_path / "c.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"model", "model_config"}
    assert payload["model_config"] == dataclasses.asdict(model.config)


def test_reserved_keys_and_foreign_payloads_are_rejected(tmp_path: Path) -> None:
    model = create_model("medslip_resnet18", n_layers=1)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, model_config={})
    with pytest.raises(ValueError, match="not a medslip checkpoint"):
        model_from_state({"model": model.state_dict()})
