"""MeDSLIP forward pass: output shapes, official key compatibility, open-vocabulary queries, maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from training.model import MeDSLIP, ModelConfig, create_model


def _tiny(**overrides: Any) -> MeDSLIP:
    settings: dict[str, Any] = {
        "image_size": 64,
        "d_model": 32,
        "ffn_dim": 64,
        "n_layers": 2,
        "text_dim": 16,
    }
    settings.update(overrides)
    return create_model("medslip_resnet18", **settings).eval()


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("medslip_resnet18", 64),
        ("medslip_resnet50", 64),
        ("medslip_resnet18", 224),
        ("medslip_resnet50", 224),
    ],
)
def test_output_shapes(name: str, size: int) -> None:
    model = create_model(name, image_size=size).eval()
    grid = size // 16
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    t = model.config.text_dim
    assert out.pathology_logits.shape == (1, 75, 2)
    assert out.anatomy_logits.shape == (1, 51, 2)
    assert out.pathology_features.shape == (1, 75, 256)
    assert out.anatomy_features.shape == (1, 51, 256)
    assert out.pathology_maps.shape == (1, 75, grid, grid)
    assert out.anatomy_maps.shape == (1, 51, grid, grid)
    assert len(out.pathology_layer_maps) == len(out.anatomy_layer_maps) == 4
    assert all(m.shape == (1, 75, grid, grid) for m in out.pathology_layer_maps)
    assert out.pathology_text_proj.shape == (1, 75, t)
    assert out.anatomy_text_proj.shape == (1, 51, t)
    assert torch.equal(out.pathology_maps, out.pathology_layer_maps[-1])


def test_state_dict_matches_official_manifest(shared_data: Path) -> None:
    manifest_path = shared_data.parent / "docs" / "medslip_official_state_dict.json"
    if not manifest_path.is_file():
        pytest.skip("../shared/docs/medslip_official_state_dict.json is absent")
    manifest = json.loads(manifest_path.read_text())["state_dict"]
    model = create_model("medslip_resnet50", text_dim=768)
    ours = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert set(ours) - set(manifest) == {"pathology_book", "anatomy_book"}
    assert len(manifest) == 426
    for name, spec in manifest.items():
        assert ours.get(name) == spec["shape"], name
    assert model.state_dict()["res_features.1.num_batches_tracked"].dtype == torch.int64


def test_books_are_buffers_saved_in_state_dict() -> None:
    model = _tiny()
    names = dict(model.named_buffers())
    assert names["pathology_book"].shape == (75, 16) and names["anatomy_book"].shape == (51, 16)
    assert "pathology_book" not in dict(model.named_parameters())
    book_p, book_a = torch.randn(75, 16), torch.randn(51, 16)
    model.set_query_books(book_p, book_a)
    assert torch.equal(model.state_dict()["pathology_book"], book_p)
    with pytest.raises(ValueError, match="pathology_book must have shape"):
        model.set_query_books(torch.randn(74, 16), book_a)


def test_open_vocabulary_queries_of_any_size() -> None:
    torch.manual_seed(0)
    model = _tiny()
    model.set_query_books(torch.randn(75, 16), torch.randn(51, 16))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        custom = model(images, pathology_queries=torch.randn(3, 16), anatomy_queries=torch.randn(7, 16))
        default = model(images)
        explicit = model(images, pathology_queries=model.pathology_book, anatomy_queries=model.anatomy_book)
        subset = model(images, pathology_queries=model.pathology_book[:5])
    assert custom.pathology_logits.shape == (2, 3, 2) and custom.anatomy_logits.shape == (2, 7, 2)
    assert custom.pathology_maps.shape == (2, 3, 4, 4) and custom.anatomy_text_proj.shape == (2, 7, 16)
    assert torch.allclose(default.pathology_logits, explicit.pathology_logits)
    assert subset.pathology_logits.shape == (2, 5, 2)
    assert not torch.allclose(custom.pathology_logits[:, 0], default.pathology_logits[:, 0])


def test_attention_maps_are_distributions_over_tokens() -> None:
    torch.manual_seed(1)
    model = _tiny(n_layers=3)
    model.set_query_books(torch.randn(75, 16), torch.randn(51, 16))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    for maps in [*out.pathology_layer_maps, *out.anatomy_layer_maps]:
        assert torch.all(maps >= 0)
        assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(maps.shape[:2]), atol=1e-5)


def test_batch_items_are_independent_in_eval() -> None:
    torch.manual_seed(2)
    model = _tiny()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        batched = model(images).pathology_logits
        single = model(images[1:2]).pathology_logits
    assert torch.allclose(batched[1:2], single, atol=1e-5)


def test_stream_split_uses_complementary_mask() -> None:
    """With an identity mask generator the anatomy stream sees (1 - x) * x, the pathology stream x * x."""
    model = _tiny()
    channels = model.config.token_dim
    with torch.no_grad():
        model.mask_generator.weight.copy_(torch.eye(channels))
        model.mask_generator.bias.zero_()
        images = torch.randn(1, 3, 64, 64)
        tokens = model.res_features(images).flatten(2).transpose(1, 2)  # (1, N, C)
        pathology, anatomy, grid_h, grid_w = model.encode_image(images)
        expected_anatomy = model.res_l2_anatomy(torch.relu(model.res_l1_anatomy((1 - tokens) * tokens)))
        expected_pathology = model.res_l2_pathology(torch.relu(model.res_l1_pathology(tokens * tokens)))
    assert (grid_h, grid_w) == (4, 4)
    assert torch.allclose(anatomy, expected_anatomy, atol=1e-5)
    assert torch.allclose(pathology, expected_pathology, atol=1e-5)


def test_single_projection_serves_both_books() -> None:
    model = _tiny()
    assert not any("anatomy_embedding" in name for name, _ in model.named_parameters())


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(3)
    model = _tiny(dropout=0.0).train()
    model.set_query_books(torch.randn(75, 16), torch.randn(51, 16))
    out = model(torch.randn(2, 3, 64, 64))
    loss = sum(
        t.float().square().mean()
        for t in (out.pathology_logits, out.anatomy_logits, out.pathology_text_proj, out.anatomy_text_proj)
    )
    loss.backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert without_grad == []


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelConfig(image_size=100)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)
    assert ModelConfig(image_size=512).grid_size == 32


def test_torch_export_with_dynamic_batch_and_query_counts() -> None:
    """The forward has no value-dependent Python control flow: one export serves any B, Qp, Qa."""
    model = _tiny(n_layers=1)
    dims = {"images": {0: torch.export.Dim("B")}, "pathology_queries": {0: torch.export.Dim("Qp")},
            "anatomy_queries": {0: torch.export.Dim("Qa")}}  # fmt: skip
    args = (torch.randn(2, 3, 64, 64), torch.randn(5, 16), torch.randn(7, 16))
    exported = torch.export.export(model, args, dynamic_shapes=dims).module()
    images, pathology_queries, anatomy_queries = (
        torch.randn(3, 3, 64, 64),
        torch.randn(9, 16),
        torch.randn(2, 16),
    )
    with torch.no_grad():
        got = exported(images, pathology_queries, anatomy_queries)
        want = model(images, pathology_queries, anatomy_queries)
    assert got.pathology_maps.shape == (3, 9, 4, 4) and got.anatomy_logits.shape == (3, 2, 2)
    assert torch.allclose(got.pathology_logits, want.pathology_logits, atol=1e-5)
