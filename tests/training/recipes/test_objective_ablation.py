"""The objective ablation: every arm is a valid config of the default recipe, and the table summarises
the runs it finds (mean +- sd over seeds, wall time)."""

from __future__ import annotations

import json
from pathlib import Path

from training.objectives.config import resolve_objectives
from training.recipes.default_model import PRETRAIN_CONFIG
from training.recipes.objective_ablation import ARMS, COLUMNS, table, verdict
from training.recipes.seed_study import NIH, NIH_ENTITIES
from training.trainer.config import load_config


def test_every_arm_is_a_valid_config_differing_only_in_its_objectives() -> None:
    terms = {}
    for arm, objectives in ARMS.items():
        config = load_config(PRETRAIN_CONFIG, [f"objectives={objectives}", "schedule.epochs=1"])
        plan = resolve_objectives(config.objectives)
        terms[arm] = set() if plan is None else {spec.name for spec in config.objectives if spec.enabled}
    assert terms["medslip"] == set()
    assert terms["asg"] == {"asg_ira", "asg_arsa", "asg_tags", "asg_soft"}
    assert terms["mlip"] == {"mlip_psm", "mlip_mcl"}
    assert terms["all"] == terms["asg"] | terms["mlip"]


def _report(nih: float, pneumonia: float) -> dict[str, object]:
    return {
        "classification": {
            NIH: {name: {"auroc": nih, "n_pos": 3, "n_neg": 3} for name in NIH_ENTITIES},
            "kermany-pediatric": {"pneumonia": {"auroc": pneumonia, "n_pos": 3, "n_neg": 3}},
        },
        "segmentation": {"heart": {"dice": 0.9}},
    }


def test_table_gives_mean_and_sd_over_seeds_and_the_wall_time(tmp_path: Path) -> None:
    for seed, nih, wall in ((42, 0.60, 600.0), (43, 0.64, 720.0)):
        run = tmp_path / "asg" / f"seed{seed}"
        (run / "eval").mkdir(parents=True)
        (run / "eval" / "report.json").write_text(json.dumps(_report(nih, 0.9)))
        (run / "wall.json").write_text(json.dumps({"pretrain": wall}))
    text = table(tmp_path)
    lines = text.splitlines()
    assert len(lines) == 3  # header, rule, the one arm with runs
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == "asg" and cells[1] == "42 43"
    assert cells[2] == "0.620 +- 0.028"  # NIH mean AUROC: mean 0.62, sample sd 0.0283
    assert cells[4] == "0.900 +- 0.000"
    assert cells[2 + [k for k, _ in COLUMNS].index("dice_heart")] == "0.900 +- 0.000"
    assert cells[-2] == "11.0"  # (10 + 12) / 2 minutes
    assert cells[-1] == "-"  # no MeDSLIP-alone runs to judge against


def _study(mean: dict[str, float], sd: dict[str, float]) -> dict[str, object]:
    return {"mean": mean, "sd": sd}


def test_an_arm_is_adopted_only_when_better_on_the_headline_and_worse_nowhere() -> None:
    base = _study(
        {"nih_mean_auroc_14": 0.63, "dice_heart": 0.90}, {"nih_mean_auroc_14": 0.01, "dice_heart": 0.02}
    )
    gain = _study(
        {"nih_mean_auroc_14": 0.66, "dice_heart": 0.89}, {"nih_mean_auroc_14": 0.005, "dice_heart": 0.01}
    )
    assert verdict(gain, base) == (True, ["nih_mean_auroc_14"], [])
    within_spread = _study(
        {"nih_mean_auroc_14": 0.635, "dice_heart": 0.9}, {"nih_mean_auroc_14": 0.0, "dice_heart": 0.0}
    )
    assert verdict(within_spread, base)[0] is False
    paid_with_masks = _study(
        {"nih_mean_auroc_14": 0.70, "dice_heart": 0.80}, {"nih_mean_auroc_14": 0.0, "dice_heart": 0.0}
    )
    assert verdict(paid_with_masks, base) == (False, ["nih_mean_auroc_14"], ["dice_heart"])
