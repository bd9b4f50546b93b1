"""`python -m training.recipes.objective_ablation`: MeDSLIP alone against MeDSLIP + ASG / + MLIP / + both.

Every arm trains the default model's config (`default_cxr.yaml`: the same data, trunk, joint
segmentation head, precision and threads) for the same number of steps, differing only in its
`objectives:` entries; then the same stage-2 segmentation fine-tune on the frozen trunk and the same
`medslip-eval` on the validation splits as the default-model recipe. The recipe's mask stage is left
out: it changes only the served masks, never the scores or the finding maps (whose prior is stage 2's
head), which are what the arms compare. Equal compute means equal steps on
equal data: the extra terms cost wall time, which is recorded per run (`wall.json`) and reported.

Stages are skipped when their output exists, so an interrupted study resumes; `--seeds` can be split
over several processes (one per core). `--table` trains nothing and prints the markdown table of the
runs found, with mean +- sd over seeds (`seed_study.summarise`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.recipes.default_model import (
    PRETRAIN_CONFIG,
    SEG_CONFIG,
    SEG_OVERRIDES,
    compute_settings,
    evaluate,
    manifests,
    run_overrides,
    run_stage,
)
from training.recipes.seed_study import summarise

logger = logging.getLogger(__name__)

ASG = "{name: asg_ira}, {name: asg_arsa}, {name: asg_tags}, {name: asg_soft}"
MLIP = "{name: mlip_psm}, {name: mlip_mcl}"
#: arm -> the `objectives:` list it trains with (MeDSLIP's five terms are in every arm).
ARMS: dict[str, str] = {"medslip": "[]", "asg": f"[{ASG}]", "mlip": f"[{MLIP}]", "all": f"[{ASG}, {MLIP}]"}
#: Figures of the table: (headline key, column title).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("nih_mean_auroc_14", "NIH mean AUROC (14)"),
    ("pointing_game_all_boxes", "pointing game (23 NIH boxes)"),
    ("kermany_pneumonia_auroc", "Kermany pneumonia AUROC"),
    ("jsrt_nodule_auroc", "JSRT nodule AUROC"),
    ("dice_heart", "Dice heart"),
    ("dice_right_lung", "Dice right lung"),
    ("dice_right_clavicle", "Dice right clavicle"),
)


def _timed(stage: str, entry: Callable[[list[str] | None], int], argv: list[str], wall: Path) -> None:
    """Run one stage and add its wall seconds to `wall.json` beside its output."""
    seconds = run_stage(stage, entry, argv)
    times = json.loads(wall.read_text(encoding="utf-8")) if wall.exists() else {}
    times[stage] = times.get(stage, 0.0) + seconds
    wall.write_text(json.dumps(times, indent=1), encoding="utf-8")


def _argv(
    config: Path, out: Path, seed: int, overrides: Sequence[str], settings: dict[str, Any]
) -> list[str]:
    argv = ["--config", str(config), "--override", f"run.out_dir={out}", "--override", f"run.seed={seed}"]
    for override in overrides:
        argv += ["--override", override]
    argv += run_overrides(settings)
    if (out / "checkpoint_last.pt").exists():
        argv += ["--resume", str(out / "checkpoint_last.pt")]
    return argv


def run_arm(work: Path, arm: str, seed: int, args: argparse.Namespace, settings: dict[str, Any]) -> Path:
    """Pretrain, fine-tune segmentation and evaluate one arm x seed -> its report.json."""
    from training.tasks import finetune_seg, train  # noqa: PLC0415

    run = work / arm / f"seed{seed}"
    wall = run / "wall.json"
    run.mkdir(parents=True, exist_ok=True)
    pretrain, seg = run / "pretrain", run / "segmentation"
    if not (pretrain / train.MEDSLIP_CHECKPOINT).exists():
        overrides = [f"objectives={ARMS[arm]}", f"schedule.epochs={args.epochs}",
                     f"schedule.warmup_epochs={args.warmup_epochs}", "run.checkpoint_every=25"]
        _timed("pretrain", train.main, _argv(PRETRAIN_CONFIG, pretrain, seed, overrides, settings), wall)
    if not (seg / finetune_seg.SEGMENTATION_CHECKPOINT).exists():
        overrides = [*SEG_OVERRIDES, f"schedule.epochs={args.seg_epochs}"]
        argv = _argv(SEG_CONFIG, seg, seed, overrides, settings)
        argv += ["--init", str(pretrain / finetune_seg.SEGMENTATION_CHECKPOINT)]
        _timed("segmentation", finetune_seg.main, argv, wall)
    source = ["--checkpoint", str(pretrain / train.MEDSLIP_CHECKPOINT),
              "--seg-checkpoint", str(seg / finetune_seg.SEGMENTATION_CHECKPOINT)]
    return evaluate(run / "eval", source, manifests(work))


def _cell(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} +- {sd:.3f}"


#: The figure an arm must raise to be adopted (the issue's headline: adult findings).
HEADLINE = "nih_mean_auroc_14"
BASELINE = "medslip"


def studies(work: Path) -> dict[str, dict[str, Any]]:
    """arm -> `seed_study.summarise` of its seeds' reports (arms without runs left out)."""
    found = {}
    for arm in ARMS:
        reports = {int(p.parent.parent.name[4:]): json.loads(p.read_text(encoding="utf-8"))
                   for p in sorted(work.glob(f"{arm}/seed*/eval/report.json"))}
        if reports:
            found[arm] = summarise(reports)
    return found


def verdict(arm: dict[str, Any], base: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    """(adopt?, figures better, figures worse) of an arm against MeDSLIP alone.

    A figure is better (worse) when the means differ by more than the larger of the two seed spreads
    (sample sd). An arm is adopted only when it is better on the headline and worse on no figure of
    the table: a gain in adult findings paid for with masks or paediatric pneumonia is not a gain."""
    better, worse = [], []
    for key, _ in COLUMNS:
        if key not in arm["mean"] or key not in base["mean"]:
            continue
        spread = max(arm["sd"].get(key) or 0.0, base["sd"].get(key) or 0.0)
        diff = arm["mean"][key] - base["mean"][key]
        if diff > spread:
            better.append(key)
        elif diff < -spread:
            worse.append(key)
    return HEADLINE in better and not worse, better, worse


def table(work: Path) -> str:
    """Markdown: one row per arm (mean +- sd over its seeds) with the pretraining wall time per run and
    its verdict against MeDSLIP alone."""
    head = ["arm", "seeds", *(title for _, title in COLUMNS), "pretrain wall (min/run)", "vs MeDSLIP alone"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    found = studies(work)
    for arm, study in found.items():
        walls = [json.loads(p.read_text(encoding="utf-8")).get("pretrain")
                 for p in sorted(work.glob(f"{arm}/seed*/wall.json"))]
        minutes = [w / 60 for w in walls if w]
        cells = [_cell(study["mean"].get(key), study["sd"].get(key)) for key, _ in COLUMNS]
        wall = f"{statistics.fmean(minutes):.1f}" if minutes else "-"
        seeds = " ".join(str(s) for s in study["seeds"])
        judged = "baseline" if arm == BASELINE else "-"
        if arm != BASELINE and BASELINE in found:
            adopt, better, worse = verdict(study, found[BASELINE])
            judged = ("ADOPT" if adopt else "not adopted") + (
                f": better {', '.join(better) or 'nothing'}; worse {', '.join(worse) or 'nothing'}")
        lines.append("| " + " | ".join([arm, seeds, *cells, wall, judged]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("runs/objectives_comparison"))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--epochs", type=int, default=1, help="pretraining epochs of every arm")
    parser.add_argument("--warmup-epochs", type=float, default=0.2)
    parser.add_argument("--seg-epochs", type=int, default=1, help="stage-2 segmentation epochs")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true",
                        help="train nothing: print the table of the runs found")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work: Path = args.work_dir
    if args.table:
        sys.stdout.write(table(work))
        return 0
    settings = compute_settings(work, args.precision, args.threads)
    manifests(work)
    for seed in args.seeds:
        for arm in args.arms:
            run_arm(work, arm, seed, args, settings)
    sys.stdout.write(table(work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
