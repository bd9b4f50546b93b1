"""Direct logit attribution: the token shares add up to what the attention blocks write toward
"present", and they follow the query's attention."""

import torch

from tests.support.training.tiny_models import IMAGE_SIZE, tiny_model
from training.evaluation.grounding_attribution import attribution_maps, present_direction


def _randomise(model: torch.nn.Module) -> None:
    """The tiny model's N(0, 0.02) heads write almost nothing; larger weights make the check sharp."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.startswith("res_features"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def test_token_shares_sum_to_the_attention_blocks_direct_push_toward_present() -> None:
    model = tiny_model()
    _randomise(model)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    written: list[torch.Tensor] = []
    hooks = [layer.multihead_attn.register_forward_hook(lambda _m, _i, out: written.append(out[0]))
             for layer in model.decoder_pathology.layers]
    maps = attribution_maps(model, images)  # (B, Q, G, G)
    for hook in hooks:
        hook.remove()
    grid = model.config.grid_size
    assert maps.shape == (2, 75, grid, grid)
    direction = present_direction(model)  # (D,)
    expected = torch.zeros(2, 75)
    with torch.no_grad():
        for layer, out in zip(model.decoder_pathology.layers, written, strict=True):  # out (Q, B, D)
            expected += ((out - layer.multihead_attn.out_proj.bias) @ direction).T  # (B, Q)
    assert torch.allclose(maps.sum(dim=(-2, -1)), expected, atol=1e-4, rtol=1e-4)
    assert float(expected.abs().mean()) > 1e-2  # the check is not a comparison of zeros


def test_the_present_direction_ignores_what_the_final_norm_subtracts() -> None:
    model = tiny_model()
    _randomise(model)
    direction = present_direction(model)
    assert abs(float(direction.sum())) < 1e-5
    norm, classifier = model.decoder_pathology.norm, model.classifier_pathology
    state = torch.randn(5, direction.shape[0], generator=torch.Generator().manual_seed(3))
    shifted = state + 7.0  # the same vector plus a constant on every feature
    logit = classifier(norm(state))
    # LayerNorm removes the constant, and the direction's dot product ignores it too.
    assert torch.allclose(classifier(norm(shifted)), logit, atol=1e-4)
    assert torch.allclose(shifted @ direction, state @ direction, atol=1e-3)


def test_the_callers_trunk_output_gives_the_same_maps_as_running_the_trunk() -> None:
    model = tiny_model()
    _randomise(model)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        grid = model.res_features(images)  # (B, C, G, G)
    assert torch.allclose(attribution_maps(model, images, grid=grid), attribution_maps(model, images))
    # a different trunk output changes the maps: the argument is used, not recomputed
    doubled = attribution_maps(model, images, grid=grid * 2.0)
    assert not torch.allclose(doubled, attribution_maps(model, images))
