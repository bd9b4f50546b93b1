"""Finding heat maps: the body prior keeps heat on the chest, every method returns a distribution."""

from __future__ import annotations

import pytest
import torch

from training.model import SEGMENTATION_STRUCTURES
from training.model.grounding import (
    GROUNDING_METHODS,
    PRIOR_STRUCTURES,
    body_prior,
    default_grounding,
    grounding_maps,
    is_gated,
    uses_prior,
)

CHANNELS = [SEGMENTATION_STRUCTURES.index(name) for name in PRIOR_STRUCTURES]


def _layers(batch: int = 2, queries: int = 3, grid: int = 8, layers: int = 4) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(layers, batch, queries, grid * grid, generator=generator).softmax(dim=-1)
    return [m.unflatten(-1, (grid, grid)) for m in maps]  # each (B, Q, G, G), sums to 1


def _logits_with_body(size: int = 64, inside: slice = slice(16, 48)) -> torch.Tensor:
    """Segmentation logits (1, K, S, S): lungs and heart certain inside a square, absent elsewhere."""
    logits = torch.full((1, len(SEGMENTATION_STRUCTURES), size, size), -20.0)
    logits[:, CHANNELS, inside, inside] = 20.0
    return logits


@pytest.mark.parametrize("method", GROUNDING_METHODS)
def test_every_method_returns_one_distribution_per_query(method: str) -> None:
    layers = _layers(batch=1)
    maps = grounding_maps(layers, _logits_with_body(), method, CHANNELS)  # type: ignore[arg-type]
    assert maps.shape == (1, 3, 8, 8)
    assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(1, 3), atol=1e-5)


def test_the_prior_puts_no_heat_outside_the_body_but_one_dilation_cell() -> None:
    maps = grounding_maps(_layers(batch=1), _logits_with_body(), "layer_mean_prior", CHANNELS)  # (1, 3, 8, 8)
    # The body covers pixels 16..47 = grid cells 2..5; dilation by one cell reaches 1..6.
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[1:7, 1:7] = False
    assert float(maps[..., outside].max()) < 1e-9  # sigmoid(-20) ~ 2e-9 of the body's weight
    assert float(maps[..., 2:6, 2:6].sum()) > 0.5


def test_layer_mean_averages_every_decoder_layer() -> None:
    layers = _layers()
    assert torch.allclose(grounding_maps(layers, None, "layer_mean"), torch.stack(layers).mean(dim=0))
    assert torch.equal(grounding_maps(layers, None, "last"), layers[-1])


def test_prior_methods_need_segmentation_and_unknown_methods_fail() -> None:
    with pytest.raises(ValueError, match="needs segmentation"):
        grounding_maps(_layers(), None, "last_prior", CHANNELS)
    with pytest.raises(ValueError, match="unknown grounding method"):
        grounding_maps(_layers(), None, "rollout", CHANNELS)  # type: ignore[arg-type]
    assert default_grounding(False) == "layer_mean"


def test_body_prior_is_in_unit_range_on_the_token_grid() -> None:
    prior = body_prior(_logits_with_body(), CHANNELS, (8, 8))  # (1, 1, 8, 8)
    assert prior.shape == (1, 1, 8, 8)
    assert float(prior.min()) >= 0.0 and float(prior.max()) <= 1.0
    assert float(prior[0, 0, 0, 0]) < 1e-6 and float(prior[0, 0, 4, 4]) > 0.99


def _logits_with_faint_rim(size: int = 64) -> torch.Tensor:
    """Lungs/heart certain in the centre square, and a faint (p ~ 0.1) band around it."""
    logits = _logits_with_body(size)
    band = torch.zeros(size, size, dtype=torch.bool)
    band[8:56, 8:56] = True
    band[16:48, 16:48] = False
    logits[:, CHANNELS[0], band] = -2.2  # sigmoid ~ 0.10
    return logits


def test_the_gate_leaves_no_heat_where_the_prior_is_faint() -> None:
    logits = _logits_with_faint_rim()
    soft = grounding_maps(_layers(batch=1), logits, "layer_mean_prior", CHANNELS)  # (1, 3, 8, 8)
    gated = grounding_maps(_layers(batch=1), logits, "layer_mean_prior_gated", CHANNELS)
    prior = body_prior(logits, CHANNELS, (8, 8))[0, 0]  # (8, 8)
    faint = prior < 0.5
    assert bool(faint.any()) and float(soft[..., faint].sum()) > 0.01  # the soft prior lets heat there
    assert float(gated[..., faint].abs().max()) == 0.0
    assert torch.allclose(gated.sum(dim=(-2, -1)), torch.ones(1, 3), atol=1e-5)


def test_the_gate_keeps_the_soft_prior_when_nothing_is_chest() -> None:
    nothing = torch.full((1, len(SEGMENTATION_STRUCTURES), 64, 64), -2.2)  # p ~ 0.1 everywhere
    soft = grounding_maps(_layers(batch=1), nothing, "layer_mean_prior", CHANNELS)
    gated = grounding_maps(_layers(batch=1), nothing, "layer_mean_prior_gated", CHANNELS)
    assert torch.allclose(gated, soft)


def test_uses_prior_names_the_methods_that_read_the_masks() -> None:
    assert [m for m in GROUNDING_METHODS if uses_prior(m)] == [
        "last_prior", "first_prior", "layer_mean_prior", "layer_mean_prior_gated", "uniform_prior"
    ]


def test_is_gated_names_the_methods_that_zero_cells_outside_the_prior() -> None:
    assert [m for m in GROUNDING_METHODS if is_gated(m)] == ["layer_mean_prior_gated"]


def test_the_uniform_prior_reference_ignores_the_attention() -> None:
    logits = _logits_with_body()
    first = grounding_maps(_layers(batch=1), logits, "uniform_prior", CHANNELS)  # (1, 3, 8, 8)
    other = grounding_maps([m.flip(-1) ** 3 for m in _layers(batch=1)], logits, "uniform_prior", CHANNELS)
    assert torch.allclose(first, other)
    prior = body_prior(logits, CHANNELS, (8, 8))  # (1, 1, 8, 8)
    assert torch.allclose(first, (prior / prior.sum()).expand_as(first), atol=1e-6)
