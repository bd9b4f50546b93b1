"""Model registry: names map to configurations; overrides are validated."""

from __future__ import annotations

import pytest
import torch

from training.model import ModelConfig, create_model, get_model_config, list_models, register_model


def test_builtin_architectures() -> None:
    assert {"medslip_resnet50", "medslip_resnet34", "medslip_resnet18"} <= set(list_models())
    assert get_model_config("medslip_resnet50").token_dim == 1024
    assert get_model_config("medslip_resnet18").token_dim == 256
    assert get_model_config("medslip_resnet50", image_size=512).grid_size == 32


def test_unknown_names_and_fields_are_errors() -> None:
    with pytest.raises(KeyError, match="unknown model"):
        create_model("medslip_vit")
    with pytest.raises(TypeError, match="unknown ModelConfig fields: n_head"):
        create_model("medslip_resnet18", n_head=8)
    with pytest.raises(ValueError, match="already registered"):
        register_model("medslip_resnet18")(ModelConfig)


def test_books_passed_at_creation() -> None:
    book_p, book_a = torch.randn(75, 384), torch.randn(51, 384)
    model = create_model("medslip_resnet18", n_layers=1, pathology_book=book_p, anatomy_book=book_a)
    assert torch.equal(model.pathology_book, book_p) and torch.equal(model.anatomy_book, book_a)
    with pytest.raises(ValueError, match="both"):
        create_model("medslip_resnet18", n_layers=1, pathology_book=book_p)
