"""Strict dataclass <-> YAML/JSON configuration files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.support.config_files import save_config
from training.config_io import config_from_dict, config_to_dict, load_config
from training.model import ModelConfig
from training.tasks.losses import LossConfig


@dataclass(frozen=True)
class Inner:
    sizes: tuple[int, ...] = (1, 2)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "run"
    rate: float = 0.1
    out_dir: Path = Path("runs")
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None
    tags: list[str] = field(default_factory=list)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_nested(tmp_path: Path, suffix: str) -> None:
    config = Outer(
        name="x", rate=2.0, out_dir=Path("/tmp/o"), inner=Inner((3, 4, 5), "b"), limit=7, tags=["t"]
    )
    path = tmp_path / f"c{suffix}"
    save_config(config, path)
    assert load_config(Outer, path) == config


def test_model_and_loss_configs_round_trip(tmp_path: Path) -> None:
    model = ModelConfig(trunk="resnet18", image_size=512)
    save_config(model, tmp_path / "m.yaml")
    assert load_config(ModelConfig, tmp_path / "m.yaml") == model
    assert config_from_dict(LossConfig, config_to_dict(LossConfig(temperature=0.07))).temperature == 0.07


def test_defaults_fill_missing_keys_and_ints_become_floats() -> None:
    config = config_from_dict(Outer, {"rate": 1, "inner": {"sizes": [9]}})
    assert config.rate == 1.0 and isinstance(config.rate, float)
    assert config.inner == Inner((9,), "a") and config.name == "run"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "typo"}, "unknown keys nmae"),
        ({"inner": {"mode": "c"}}, "Outer.inner.mode: 'c' is not one of"),
        ({"rate": "fast"}, "Outer.rate"),
        ({"limit": 1.5}, "Outer.limit"),
        ({"name": True}, "Outer.name"),
    ],
)
def test_invalid_values_are_rejected_with_their_path(data: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        config_from_dict(Outer, data)


def test_section_loading(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("model:\n  trunk: resnet18\nloss:\n  icl_weight: 0.5\n")
    assert load_config(ModelConfig, path, section="model").trunk == "resnet18"
    assert load_config(LossConfig, path, section="loss").icl_weight == 0.5
    with pytest.raises(KeyError, match="no section"):
        load_config(LossConfig, path, section="optim")
