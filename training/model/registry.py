"""Named architectures as data: a name maps to a function returning a `ModelConfig`.

Same idea as open_clip / timm model registries: training recipes, export and evaluation refer to
architectures by name, and overrides (e.g. `image_size=512`) are applied to the dataclass, never by
editing code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from training.model.config import ModelConfig
from training.model.medslip import MeDSLIP

ConfigFactory = Callable[[], ModelConfig]

_REGISTRY: dict[str, ConfigFactory] = {}


def register_model(name: str) -> Callable[[ConfigFactory], ConfigFactory]:
    """Decorator: register a function returning the `ModelConfig` of architecture `name`."""

    def decorator(factory: ConfigFactory) -> ConfigFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The registered configuration of `name` with `overrides` applied (validated by ModelConfig)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    config = _REGISTRY[name]()
    unknown = set(overrides) - {field.name for field in dataclasses.fields(ModelConfig)}
    if unknown:
        raise TypeError(f"unknown ModelConfig fields: {', '.join(sorted(unknown))}")
    return dataclasses.replace(config, **overrides)


def create_model(
    name: str,
    *,
    pathology_book: torch.Tensor | None = None,
    anatomy_book: torch.Tensor | None = None,
    **overrides: Any,
) -> MeDSLIP:
    """Build a randomly initialised model; pass the query books (from `build_query_books`) when known.

    Without books the built-in queries are zeros until `set_query_books` or a checkpoint fills them.
    """
    model = MeDSLIP(get_model_config(name, **overrides))
    if pathology_book is not None or anatomy_book is not None:
        if pathology_book is None or anatomy_book is None:
            raise ValueError("pass both pathology_book and anatomy_book, or neither")
        model.set_query_books(pathology_book, anatomy_book)
    return model


@register_model("medslip_resnet50")
def medslip_resnet50() -> ModelConfig:
    """The released architecture: ResNet-50 layer3 tokens (1024-d, 14 x 14 at 224 px)."""
    return ModelConfig(trunk="resnet50")


@register_model("medslip_resnet34")
def medslip_resnet34() -> ModelConfig:
    """ResNet-34 layer3 tokens (256-d like ResNet-18, 13 residual blocks to layer3 instead of 6): more
    depth at the same token width. Trunk to layer3 at 224 px (`torch.utils.flop_counter`): 3.0 GMAC and
    8.2 M parameters, against ResNet-18's 1.4 GMAC / 2.8 M and ResNet-50's 3.3 GMAC / 8.5 M."""
    return ModelConfig(trunk="resnet34")


@register_model("medslip_resnet18")
def medslip_resnet18() -> ModelConfig:
    """A small variant (256-d tokens) for quick experiments and tests."""
    return ModelConfig(trunk="resnet18")
