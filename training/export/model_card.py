"""MODEL_CARD.md of an image bundle, rendered from its metadata so the card never disagrees with it."""

from __future__ import annotations

from typing import Any


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def classification_table(metrics: dict[str, Any]) -> list[str]:
    """Per source and finding: AUROC, the balanced (Youden's J) operating point with its sensitivity and
    specificity, and max-F1 for comparison."""
    rows = ["| data | finding | n+ | n- | AUROC | balanced threshold | sensitivity | specificity | max-F1 "
            "| ECE |", "|---|---|---|---|---|---|---|---|---|---|"]
    for source, findings in metrics.get("classification", {}).items():
        for name, m in findings.items():
            rows.append(
                f"| {source} | {name} | {m.get('n_pos')} | {m.get('n_neg')} | {_figure(m.get('auroc'))} "
                f"| {_figure(m.get('balanced_threshold'))} | {_figure(m.get('balanced_sensitivity'))} "
                f"| {_figure(m.get('balanced_specificity'))} | {_figure(m.get('max_f1'))} "
                f"| {_figure(m.get('ece'))} |"
            )
    return rows if len(rows) > 2 else ["No classification evaluation was attached to this export."]


def origin_table(metrics: dict[str, Any]) -> list[str]:
    """Per source merged from several copies (`origin_dependence` of the report): each finding's n+ per
    copy, its pooled AUROC, its AUROC within each copy, and what a score knowing only the copy reaches.
    Empty when no source has two origins."""
    rows: list[str] = []
    for source, section in metrics.get("origin_dependence", {}).items():
        copies = sorted({origin for m in section["findings"].values() for origin in m["origins"]})
        if not rows:
            rows = [f"| data | finding | n+ ({' / '.join(f'`{c}`' for c in copies)}) | pooled AUROC "
                    "| within-copy AUROC | copy-only AUROC |", "|---|---|---|---|---|---|"]
        for name, m in section["findings"].items():
            positives = " / ".join(str(m["origins"].get(c, {}).get("n_positive", 0)) for c in copies)
            rows.append(f"| {source} | {name} | {positives} | {_figure(m.get('auroc'))} "
                        f"| {_figure(m.get('within_origin'))} | {_figure(m.get('origin_only'))} |")
        mean = section["mean"]
        rows.append(f"| {source} | mean of {mean['n_findings']} (not `normal`) | "
                    f"| {_figure(mean.get('auroc'))} | {_figure(mean.get('within_origin'))} "
                    f"| {_figure(mean.get('origin_only'))} |")
    return rows


def grounding_table(metrics: dict[str, Any]) -> list[str]:
    rows = ["| query | region | n | pointing game | IoU | Dice | CNR |", "|---|---|---|---|---|---|---|"]
    for query, m in metrics.get("grounding", {}).get("anatomy", {}).items():
        rows.append(f"| {query} | {m.get('region')} | {m.get('n')} | {_figure(m.get('pointing_game'))} "
                    f"| {_figure(m.get('iou'))} | {_figure(m.get('dice'))} | {_figure(m.get('cnr'))} |")
    return rows if len(rows) > 2 else ["No grounding evaluation was attached to this export."]


def finding_grounding_table(metrics: dict[str, Any]) -> list[str]:
    """Finding heat maps vs radiologist boxes: validation-split boxes, then the boxes of every split."""
    rows = ["| boxes | finding | n | pointing game | heat-in-box ratio | IoU | Dice |",
            "|---|---|---|---|---|---|---|"]
    grounding = metrics.get("grounding", {})
    for section, label in (("findings", "validation split"), ("findings_all_splits", "every split")):
        for name, m in grounding.get(section, {}).items():
            rows.append(f"| {label} | {name} | {m.get('n')} | {_figure(m.get('pointing_game'))} "
                        f"| {_figure(m.get('heat_ratio'))} | {_figure(m.get('iou'))} "
                        f"| {_figure(m.get('dice'))} |")
    return rows if len(rows) > 2 else ["No finding boxes were evaluated."]


def _percent(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, int | float) else "-"


def segmentation_table(metrics: dict[str, Any]) -> list[str]:
    """Dice and IoU per structure; with the median share of the film the mask and the expert mask
    cover when the evaluation measured them (the reference for `mask_area_table`)."""
    scored = {name: m for name, m in metrics.get("segmentation", {}).items()
              if isinstance(m, dict) and "dice" in m}  # not notes such as the threshold used
    areas = any("median_area" in m for m in scored.values())
    head = "| structure | n | Dice | IoU |" + (" median mask area | median expert area |" if areas else "")
    rows = [head, "|---|---|---|---|" + ("---|---|" if areas else "")]
    for name, m in scored.items():
        row = f"| {name} | {m.get('n')} | {_figure(m.get('dice'))} | {_figure(m.get('iou'))} |"
        if areas:
            row += f" {_percent(m.get('median_area'))} | {_percent(m.get('expert_median_area'))} |"
        rows.append(row)
    return rows if len(rows) > 2 else ["No segmentation evaluation was attached to this export."]


def mask_area_table(metrics: dict[str, Any]) -> list[str]:
    """Masks on validation films that have no expert masks (adult NIH films): the median share of the
    film each mask covers and how many films a mask floods (over 30 %). Why: Dice is measured only
    where experts drew masks, and a head can score well there yet flood or vanish on other films."""
    unlabelled = metrics.get("segmentation_unlabelled") or {}
    rows = ["| films | structure | n | median mask area | films with the mask over 30 % |",
            "|---|---|---|---|---|"]
    for source, structures in sorted(unlabelled.items()):
        for name, m in sorted(structures.items()):
            rows.append(f"| {source} | {name} | {m.get('n')} | {_percent(m.get('median_area'))} | "
                        f"{_percent(m.get('share_over_30pct'))} |")
    return rows if len(rows) > 2 else []


def graph_lines(metadata: dict[str, Any]) -> list[str]:
    """One line per graph of the bundle: what it computes, its precision and its drift from PyTorch."""
    lines = []
    for name, graph in metadata["graphs"].items():
        drift = ", ".join(f"{k} {v:.1e}" for k, v in graph.get("parity_max_abs_diff", {}).items())
        lines.append(
            f"- Graph `{graph['file']}` ({name}; outputs {', '.join(graph.get('outputs', {}))}): "
            f"{graph.get('precision', 'fp32')} weights, float32 inputs/outputs; max abs difference from "
            f"PyTorch fp32: {drift}."
        )
    return lines


def render_model_card(metadata: dict[str, Any]) -> str:
    """Markdown card: identity, intended use, I/O, preprocessing, measured figures, limitations."""
    architecture = metadata["architecture"]
    metrics = metadata.get("metrics") or {}
    structures = metadata["segmentation"]["structures"]
    lines = [
        f"# {metadata['name']} {metadata['version']}",
        "",
        metadata["description"],
        "",
        "## Intended use",
        "",
        f"**{metadata['intended_use']}.** Outputs are research signals, not diagnoses; they must not be",
        "used for clinical decisions.",
        "",
        "## Model",
        "",
        f"- Architecture: MeDSLIP dual-stream, trunk `{architecture['trunk']}`, {architecture['n_layers']} "
        f"decoder layers per stream, d_model {architecture['d_model']}, "
        f"input {architecture['image_size']} px.",
        f"- Text encoder: `{architecture['text_encoder']}` ({architecture['text_pooling']} pooling, "
        f"dim {architecture['text_dim']}).",
        *graph_lines(metadata),
        "- Segmentation structures: "
        + (", ".join(structures) if structures else "none (no segmentation head)") + ".",
        "",
        "## Preprocessing",
        "",
        "Letterbox to a square (longer side scaled, black padding), gray replicated to 3 channels, ImageNet",
        f"mean/std normalisation: `{metadata['preprocessing']}`.",
        "",
        "## Evaluation",
        "",
        f"Source: {metrics.get('source', 'no evaluation report attached')}.",
        "",
        *classification_table(metrics),
        "",
        *grounding_table(metrics),
        "",
        *finding_grounding_table(metrics),
        "",
        *segmentation_table(metrics),
        "",
        "## Training data",
        "",
        f"`{metadata['training_data']}`",
        "",
        "## Limitations",
        "",
        "- Evaluated on small public sets only; figures with few positives or negatives are unreliable.",
        "- Frontal chest radiographs only; lateral views and other body parts are out of scope.",
        "- Heat maps are attention weights, not segmentations; they can highlight the wrong region.",
        "",
    ]
    return "\n".join(lines)
