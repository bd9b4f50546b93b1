"""`objectives:` entries: defaults, switches, weights and the errors a wrong entry gets at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.objectives.config import (
    AsgSettings,
    MlipSettings,
    ObjectiveSpec,
    resolve_objectives,
)
from training.trainer.config import ConfigError, load_config

TINY = Path(__file__).resolve().parents[3] / "training" / "configs" / "tiny.yaml"


def test_no_entries_is_medslip_alone() -> None:
    assert load_config(TINY).objectives == []
    assert resolve_objectives([]) is None
    assert resolve_objectives([ObjectiveSpec("asg_ira", enabled=False)]) is None


def test_entries_load_from_yaml_with_the_released_asg_weights() -> None:
    config = load_config(TINY, [
        "objectives=[{name: asg_ira}, {name: asg_arsa}, {name: asg_tags}, {name: asg_soft},"
        " {name: mlip_psm, weight: 0.5, settings: {mask_ratio: 0.25}}, {name: mlip_mcl, enabled: false}]"
    ])
    plan = resolve_objectives(config.objectives)
    assert plan is not None
    assert plan.weights == {
        "asg_ira": 1.0, "asg_arsa": 1.0, "asg_tags": 5.0, "asg_soft": 1.0, "mlip_psm": 0.5
    }
    assert plan.asg == AsgSettings() and plan.asg.temperature == 0.07 and plan.asg.embed_dim == 128
    assert plan.mlip == MlipSettings(mask_ratio=0.25)
    assert plan.enabled("asg") == ("asg_ira", "asg_arsa", "asg_tags", "asg_soft")
    assert plan.enabled("mlip") == ("mlip_psm",)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([ObjectiveSpec("asg_itm")], "unknown term 'asg_itm'"),
        ([ObjectiveSpec("asg_ira"), ObjectiveSpec("asg_ira", weight=2.0)], "listed twice"),
        ([ObjectiveSpec("asg_ira", weight=-1.0)], "weight must be >= 0"),
        ([ObjectiveSpec("asg_ira", settings={"temprature": 0.1})], "unknown keys temprature"),
        (
            [ObjectiveSpec("asg_ira", settings={"embed_dim": 64}),
             ObjectiveSpec("asg_soft", settings={"embed_dim": 128})],
            "embed_dim",
        ),
        ([ObjectiveSpec("mlip_psm", settings={"mask_ratio": 1.0})], "mask_ratio"),
        ([ObjectiveSpec("mlip_mcl")], "mlip_mcl needs mlip_psm"),
    ],
)
def test_wrong_entries_are_refused(entries: list[ObjectiveSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_objectives(entries)


def test_unknown_entry_keys_fail_when_the_config_loads() -> None:
    with pytest.raises(ConfigError, match="wieght"):
        load_config(TINY, ["objectives=[{name: asg_ira, wieght: 2}]"])
