"""Model card of the default bundle: what it was trained on, how, how well, and what it must not be used for.

Every figure is read from the bundle's own `medslip-eval --bundle` report, so the card cannot drift from
what the command it names reproduces.
"""

from __future__ import annotations

import textwrap
from typing import Any

from training.data.sources.registry import SOURCE_NAMES
from training.export.model_card import (
    classification_table,
    finding_grounding_table,
    graph_lines,
    grounding_table,
    mask_area_table,
    origin_table,
    segmentation_table,
)
from training.model.grounding import PRIOR_GATE, is_gated
from training.recipes.seed_study import COLLAPSE_AUROC

DATA_SOURCES = [
    ("covid-chestxray", "ieee8023 COVID-19 chest X-ray collection (2020-06 state): adult PA/AP films with "
     "clinical notes; V7 Labs lung masks", "per-image licences (CC BY, CC BY-NC-SA, ...); masks Apache-2.0",
     "pretraining (frontal films with notes), lung-mask fine-tuning, evaluation"),
    ("kermany-pediatric", "Kermany et al. 2018, paediatric (age 1-5) films, Normal / Bacterial / Viral-Other "
     "labels turned into report sentences by `training/reports/templates.py`", "CC BY 4.0",
     "pretraining, evaluation"),
    ("jsrt-scr", "JSRT adult PA films with SCR expert masks of lungs, heart and clavicles",
     "research use", "pretraining (nodule-label template reports; masks for the joint segmentation head), "
     "evaluation"),
    ("nih-cxr14", "NIH ChestX-ray14: 1,265 adult frontal films, 14 text-mined labels (noisy) turned into "
     "report sentences by `nih_report`; radiologist boxes on 23 films", "no use restrictions (NIH CC), "
     "attribution requested", "pretraining (label-template reports), evaluation, finding grounding (boxes, "
     "never trained on)"),
]


#: A NIH finding whose seed-mean AUROC is below this is called near chance on the card.
NEAR_CHANCE_AUROC = 0.6


def _names(keys: list[str], prefix: str) -> str:
    quoted = [f"`{k[len(prefix):]}`" for k in keys]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _weak_findings(seeds: dict[str, Any] | None) -> str:
    """The NIH findings the seed study shows collapsed (`COLLAPSE_AUROC`) on every seed or on the shipped
    one, or near chance on average, named from the figures (not written by hand: they change from one
    recipe to the next)."""
    if not seeds or not seeds.get("per_seed"):
        return ""
    prefix = "nih_auroc_"
    names = sorted(k for k in seeds["mean"] if k.startswith(prefix) and k != f"{prefix}normal")
    below = [k for k in names if all(seeds["per_seed"][s][k] <= COLLAPSE_AUROC for s in seeds["per_seed"])]
    near = [k for k in names if k not in below and seeds["mean"][k] < NEAR_CHANCE_AUROC]
    parts = []
    if below:
        verb = "ranks" if len(below) == 1 else "rank"
        parts.append(f"{_names(below, prefix)} {verb} WORSE than chance on NIH films on every seed")
    if near:
        verb = "is" if len(near) == 1 else "are"
        parts.append(f"{_names(near, prefix)} {verb} near chance (below {NEAR_CHANCE_AUROC} on average)")
    text = (" " + ", and ".join(parts) + ": do not use them.") if parts else ""
    shipped = seeds["per_seed"].get(str(seeds.get("shipped")), {})
    worse = [k for k in names if k not in below and shipped.get(k, 1.0) <= COLLAPSE_AUROC]  # what users get
    if worse:
        figures = ", ".join(f"`{k[len(prefix):]}` {shipped[k]:.3f}" for k in worse)
        text += f" On the shipped seed, worse than chance on NIH films: {figures}."
    return text


def seed_table(seeds: dict[str, Any] | None) -> list[str]:
    """Headline figures per seed of the recipe, with mean +- sample sd, and each seed's collapsed queries."""
    if not seeds or not seeds.get("per_seed"):
        return ["No seed study was attached to this build."]
    order = [str(seed) for seed in seeds["seeds"]]
    shipped = str(seeds.get("shipped"))
    header = " | ".join(f"seed {s}{' (shipped)' if s == shipped else ''}" for s in order)
    rows = [f"| figure | {header} | mean +- sd |", "|---|" + "---|" * (len(order) + 1)]
    for name, mean in seeds["mean"].items():
        values = " | ".join(f"{seeds['per_seed'][s][name]:.3f}" for s in order)
        sd = seeds["sd"].get(name)
        rows.append(f"| {name} | {values} | {mean:.3f} +- {'n/a' if sd is None else f'{sd:.3f}'} |")
    rows.append("")
    for seed in order:
        collapsed = seeds.get("collapsed", {}).get(seed) or []
        rows.append(f"- seed {seed}: queries at or below chance (AUROC <= 0.5): "
                    + (", ".join(f"`{q}`" for q in collapsed) if collapsed else "none"))
    return rows


def _compute(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "not recorded"
    threads = settings.get("threads") or "the configs'"
    return (f"{settings.get('cpu')} ({settings.get('cores')} cores), {settings.get('precision')} training, "
            f"{threads} compute thread(s) per process")


#: The clavicle Dice below which the card calls the masks rough (the project's segmentation target).
CLAVICLE_TARGET = 0.85
#: A heart mask whose median share of adult NIH films is below this fraction of the JSRT experts' median
#: is called truncated there (the head failing on films unlike JSRT's, not a smaller heart).
HEART_SHARE_FLOOR = 0.8


def _mask_limits(report: dict[str, Any]) -> list[str]:
    """The mask limitations as this bundle's own figures state them: clavicles empty, rough or at the
    target on JSRT, and whether the heart mask keeps its size on adult NIH films, where no Dice exists."""
    segmentation = report.get("segmentation", {})
    dice = {side: segmentation.get(f"{side}_clavicle", {}).get("dice") for side in ("right", "left")}
    empty = [side for side, value in dice.items() if value is not None and value < 0.1]
    shown = ", ".join(f"{side} {value:.2f}" for side, value in dice.items() if value is not None)
    if empty:
        lines = [f"- Clavicle masks are unreliable: the {' and '.join(empty)} clavicle channel stays empty on"
                 " most films (Dice near 0; see the segmentation table)."]
    elif any(value is not None and value < CLAVICLE_TARGET for value in dice.values()):
        lines = [f"- Clavicle masks are rough (Dice {shown}; an outline to rely on needs about"
                 f" {CLAVICLE_TARGET} or more)."]
    else:
        lines = [f"- Clavicle masks reach Dice {shown} on JSRT validation films (the project's target:"
                 f" {CLAVICLE_TARGET})."]
    lines += ["  Heart and clavicles were learned from JSRT alone (digitised 1990s films, 116 training",
              "  films) and transfer poorly to modern digital films."]
    expert = segmentation.get("heart", {}).get("expert_median_area")
    adult = report.get("segmentation_unlabelled", {}).get("nih-cxr14", {}).get("heart", {}).get("median_area")
    if expert and adult is not None and adult < HEART_SHARE_FLOOR * expert:
        lines.append(f"  On adult NIH films the heart mask is truncated: it covers a median {100 * adult:.1f}"
                     f" % of the film against {100 * expert:.1f} % for the JSRT experts' hearts.")
    return lines


def _overrides(overrides: list[str] | None) -> str:
    if not overrides:
        return "its own settings"
    return ", ".join(f"`{item}`" for item in overrides if not item.startswith("run."))


def _prior_source(maps: dict[str, Any]) -> str:
    """Whose probability the maps' body prior is (metadata `finding_maps.prior_head`)."""
    if maps.get("prior_head") == "own":
        return ("the frozen prior head's (a second segmentation head on the same trunk, kept from the stage"
                " the maps were measured with; `/segment` serves the other head's masks)")
    return "the segmentation head's own"


def _mask_stage(overrides: list[str] | None) -> list[str]:
    """The card's lines from the segmentation stage on: the stage that trains the served masks, when
    the recipe has one, then what the build does next."""
    then = "It then evaluates every seed, exports the shipped seed, and"
    if not overrides:
        return [f"outputs are unchanged by it). {then}"]
    return ["outputs are unchanged by it).",
            f"The served masks come from a further stage ({_overrides(overrides)}) that re-draws the",
            "head's final layer; the head before it is kept, frozen, as the prior head whose lungs and",
            "heart give the finding maps' body prior, so the maps are those it was measured with.",
            then]


def _augmentation(data: dict[str, Any]) -> str:
    """The pretraining augmentation as the card states it ("not recorded" for older metadata): how much
    of the film a crop keeps and how many RandAugment operations follow, the recipe's measured knobs."""
    if data.get("augment") is False:
        return "no augmentation"
    if "crop_scale" not in data or "randaug_ops" not in data:
        return "augmentation not recorded"
    low, high = (round(100 * float(value)) for value in data["crop_scale"])
    ops = int(data["randaug_ops"])
    magnitude = data.get("randaug_magnitude", "not recorded")
    return (f"crops of {low}-{high} % of the film's area, then {ops} RandAugment operation"
            f"{'' if ops == 1 else 's'} at magnitude {magnitude} (no flip)")


def _repeats(data: dict[str, Any]) -> str:
    """The sources seen more than once per epoch, named as in the card's data table ("jsrt-scr films
    repeated 3x per epoch"); metadata without sources states what every recipe before v1.7 did."""
    sources = data.get("sources")
    if not isinstance(sources, list):
        return "jsrt-scr films repeated 3x per epoch"
    repeated = []
    for s in sources:
        name, times = SOURCE_NAMES.get(s["kind"], s["kind"]), s.get("train_repeat", 1)
        copies = [f"`{origin}` copy {n}x" for origin, n in sorted((s.get("origin_repeat") or {}).items())]
        if times > 1:
            detail = f" (those of the {', '.join(copies)})" if copies else ""
            repeated.append(f"{name} films repeated {times}x{detail}")
        elif copies:
            repeated.append(f"{name} films of the {', '.join(copies)}")
    return ", ".join(repeated) + " per epoch" if repeated else "every film once per epoch"


def _heat_outside(report: dict[str, Any]) -> list[str]:
    """The card's line on heat outside the chest (JSRT validation films with expert masks)."""
    outside = report.get("grounding", {}).get("heat_outside_chest") or {}
    if not outside.get("n_films"):
        return []
    return [
        f"Heat outside the chest: on the {outside['n_films']} JSRT validation films, "
        f"{100 * outside['mean']:.1f} % of a finding map's heat falls outside the expert lungs-and-heart",
        f"masks grown by one token (mean over every finding; worst film {100 * outside['max_film']:.1f} %).",
        "",
    ]


def _captioned(caption: list[str], table: list[str]) -> list[str]:
    """A table under its caption, or nothing when the report has no figures for it (older reports)."""
    return [*caption, "", *table, ""] if table else []


def _mask_areas(report: dict[str, Any]) -> list[str]:
    """The card's table of mask areas on validation films without expert masks, when measured."""
    return _captioned([
        "Masks on validation films without expert masks (no Dice possible there): the share of the film",
        "each mask covers. Compare with the median expert area in the table above; a heart mask far",
        "smaller or larger than that on adult films is the head failing on films unlike JSRT's.",
    ], mask_area_table(report))


def _copies(report: dict[str, Any]) -> list[str]:
    """The NIH within-copy table and why it is there; nothing for reports older than the figure."""
    return _captioned([
        "NIH ChestX-ray14 here merges two public copies with different label spreads (one mostly",
        "pneumonia and no-finding films, one spread over all 14 labels), so the copy a film came from",
        "predicts several labels by itself. Within-copy AUROC ranks positives only against negatives of",
        "the same copy; copy-only AUROC is what a score that knows nothing but the copy would reach (each",
        "copy scored by its share of positives on these labels). Where a pooled AUROC is near the",
        "copy-only one, the within-copy AUROC says what the score does where the copy cannot help:",
    ], origin_table(report))


def _copy_limits(report: dict[str, Any]) -> list[str]:
    """The findings that rank at or below chance once the copy cannot help, named from the figures."""
    section = report.get("origin_dependence", {}).get("nih-cxr14")
    if not section:
        return []
    mean = section["mean"]
    weak = sorted(name for name, m in section["findings"].items() if name != "normal"
                  and m["within_origin"] is not None and m["within_origin"] <= COLLAPSE_AUROC)
    text = (f"- The NIH validation films come from two public copies: a score that knows only the copy"
            f" reaches a mean AUROC of {mean['origin_only']:.3f} over the {mean['n_findings']} findings, and"
            " ranked within"
            f" each copy the model's mean is {mean['within_origin']:.3f} (pooled: {mean['auroc']:.3f}).")
    if weak:
        text += (f" Within the copies {_names(weak, '')} rank at or below chance: their"
                 " pooled AUROCs and operating points reflect the copy, not the finding.")
    return textwrap.wrap(text, width=100, subsequent_indent="  ", break_on_hyphens=False)


def render_default_card(metadata: dict[str, Any], report: dict[str, Any], command: str) -> str:
    """Markdown card for the default bundle."""
    arch = metadata["architecture"]
    graph = metadata["graphs"]["image_model"]
    training = metadata.get("training_data", {})
    counts = report.get("n_images_by_source", {})
    maps = graph.get("finding_maps", {})
    schedule, optim = training.get("schedule", {}), training.get("optim", {})
    train_epochs = schedule.get("epochs", training.get("epoch", "not recorded"))
    train_lr = optim.get("lr", "not recorded")
    augmentation = _augmentation(training.get("data", {}))
    lines = [
        f"# {metadata['name']} {metadata['version']} — default MeDSLIP chest X-ray model",
        "",
        "> **Research software, not a medical device.** Not cleared or approved for any clinical use; its",
        "> scores, heatmaps and masks must not inform diagnosis, triage or treatment.",
        "",
        "## What it is",
        "",
        f"MeDSLIP dual-stream model (pathology stream: *what*; anatomy stream: *where*) with a "
        f"`{arch['trunk']}` trunk at {arch['image_size']} px, trained FROM SCRATCH by this project on",
        "the small public sets below (no MIMIC-CXR, no ImageNet initialisation: neither is available",
        "offline here). A light U-Net segmentation head (lungs, heart, clavicles) reads the SAME trunk:",
        "it was trained jointly with MeDSLIP, so one trunk serves `/classify`, `/ground` and `/segment`.",
        "Text queries: all-MiniLM-L6-v2 (frozen).",
        "",
        f"Finding heat maps (`/ground`): method `{maps.get('method', 'last')}` "
        "(training/model/grounding.py): the pathology decoder's cross-attention"
        + (" averaged over its layers" if "layer_mean" in maps.get("method", "") else "")
        + (f", multiplied by {_prior_source(maps)} lungs-and-heart probability (one token of"
           " dilation) so heat stays where the model's own masks see lungs or heart (those masks can misfire,"
           " e.g. on a shoulder: see docs/examples/)" if maps.get("prior_structures") else "")
        + (f"; cells where that probability is below {PRIOR_GATE} get no heat at all"
           if is_gated(str(maps.get("method", ""))) else "")
        + ". The method runs inside the graph: evaluation and service compute the same map.",
        "",
        "## Data",
        "",
        "| set | what | licence | used for |",
        "|---|---|---|---|",
        *[f"| {name} | {what} | {licence} | {use} |" for name, what, licence, use in DATA_SOURCES],
        "",
        "Splits: covid-chestxray's and NIH's own patient-level `split` columns; Kermany and JSRT 80/20 by",
        "a SHA-256 hash of the file name. Lateral films are excluded from training and refused by the",
        f"service. Validation images evaluated: {counts or report.get('n_images')}.",
        "",
        "NIH labels become report text through `training/reports/templates.py`: every one of the 14",
        "labels is stated present or absent, mapped onto the MeDSLIP entities as the released CXR14",
        "evaluation maps them (infiltration -> `infiltrate`, pleural thickening -> `thicken`, fibrosis ->",
        "`tail_abnorm_obs`, the entity of rare observations; on NIH films that query stands for fibrosis).",
        "No side or zone is ever written: the labels carry none.",
        "",
        "## Training recipe",
        "",
        f"`{command}` (training/recipes/default_model.py) pretrains with",
        "`training/configs/default_cxr.yaml`: all five MeDSLIP losses (pathology existence weighted 2,",
        "the others 1 as released) plus the joint segmentation Dice + BCE",
        f"({_repeats(training.get('data', {}))}), ResNet-18, {train_epochs} epochs, lr {train_lr},",
        f"{augmentation},",
        "one run per seed below; then trains the",
        "segmentation head alone on the frozen trunk (`finetune_seg_jsrt.yaml` with "
        f"{_overrides(training.get('segmentation_stage'))}; the MeDSLIP",
        *_mask_stage(training.get("mask_stage")),
        "evaluates the exported ONNX bundle with the service's own runner (on the CPU: the fp16 weights",
        "computed in fp32, the service's default there); this card reports that last evaluation (its",
        "operating points come from it too).",
        "`medslip-build-default --check` re-runs that evaluation on this bundle and compares every figure",
        "below with the card's.",
        f"Compute: {_compute(training.get('compute'))}; no GPU.",
        *graph_lines(metadata),
        f"Checkpoints: `{training.get('checkpoint')}` (step {training.get('step', 'not recorded')}), "
        f"`{training.get('seg_checkpoint')}`.",
        "",
        "## Seed study",
        "",
        "The recipe trained from scratch with each seed below, each evaluated identically (PyTorch",
        "checkpoints, validation splits). `nih_mean_auroc_14` is the mean AUROC over the 14 NIH findings;",
        "`pointing_game_all_boxes` scores the finding maps on the NIH boxes of every split (boxes are never",
        "trained on; 20 of the 23 boxed films are training films whose labels were seen).",
        "",
        *seed_table(training.get("seeds")),
        "",
        "## Validation results (ONNX bundle, ONNX Runtime CPU)",
        "",
        "Zero-shot existence scores of the pathology stream. The service's operating points are the",
        "balanced thresholds of the pooled (`all`) rows: Youden's J on the same validation split, so the",
        "sensitivity and specificity shown at it are optimistic. Only findings with validation labels and",
        "an AUROC above 0.5 get one (`\"calibrated\": true`); every other finding is served with the default",
        "threshold and `\"calibrated\": false`. ECE is the expected calibration error of the raw scores",
        "(10 bins; reliability diagram `reliability_all.png` of the evaluation): the scores are rankings,",
        "not probabilities. Choose your own operating point on local data before relying on `positive`.",
        "Figures with few positives (see n+) are unreliable; `covid-chestxray` has almost no normals.",
        "",
        *classification_table(report),
        "",
        *_copies(report),
        "Finding grounding (finding heat maps vs NIH radiologist boxes; 1.0 heat-in-box ratio = a flat map):",
        "",
        *finding_grounding_table(report),
        "",
        *_heat_outside(report),
        "Anatomy grounding (anatomy-stream attention of the lung queries vs lung boxes/masks):",
        "",
        *grounding_table(report),
        "",
        "Segmentation (sigmoid >= 0.5 at the original image size, the masks `/segment` returns; `lungs`",
        "is covid-chestxray's one mask of both lungs, scored against the union of the two lung masks):",
        "",
        *segmentation_table(report),
        "",
        *_mask_areas(report),
        "## Known limitations",
        "",
        "- Tiny training data (about 2,300 pretraining films) from scratch on 2 CPU cores: far weaker than",
        "  a model pretrained on MIMIC-CXR. The NIH mean AUROC over the 14 findings (see the seed study)",
        "  is below the peers' zero-shot 0.72-0.77." + _weak_findings(training.get("seeds")),
        "- NIH labels are text-mined and noisy; NIH pneumonia and no-finding films are over-represented",
        "  in this subset. Only 3 NIH validation films carry a box (all pneumonia): the validation",
        "  pointing game is 0, 1/3 or 2/3 by construction, hence the every-split figure beside it.",
        *_copy_limits(report),
        "- Finding heat maps localise weakly (pointing game well below 0.5); they say which part of the",
        "  chest the model attended to, not where a lesion is. The lungs-and-heart prior keeps heat on",
        "  the chest; how far it moves the peak onto a lesion depends on the masks (docs/training.md).",
        *_mask_limits(report),
        "- Scores are rankings, not probabilities (see ECE); the operating points are chosen on the same",
        "  validation split they are shown on, so their sensitivity and specificity are optimistic.",
        "- Paediatric (Kermany) and adult films differ in anatomy and acquisition; pooled figures mix them.",
        "- Frontal views only; laterals and non-chest images are refused by the service, not scored.",
        "- Washed-out 8-bit exports (gray range below 0.25 of the scale) are contrast-stretched in training",
        "  and inference alike (`washed_out_span` in metadata.json).",
        "- What would raise the figures: MIMIC-CXR-scale pretraining",
        "  (`training/configs/mimic_resnet50.yaml`), the released ResNet-50 trunk, longer schedules and a",
        "  higher segmentation resolution on a GPU, more mask data for heart and clavicles, and importing",
        "  the official weights.",
        "",
    ]
    return "\n".join(lines)
