"""Model card of the default bundle: what it was trained on, how, how well, and what it must not be used for.

Every figure is read from the bundle's own `medslip-eval --bundle` report, so the card cannot drift from
what the command it names reproduces.
"""

from __future__ import annotations

from typing import Any

DATA_SOURCES = [
    ("covid-chestxray", "ieee8023 COVID-19 chest X-ray collection (2020-06 state): adult PA/AP films with "
     "clinical notes; V7 Labs lung masks", "per-image licences (CC BY, CC BY-NC-SA, ...); masks Apache-2.0",
     "pretraining (frontal films with notes), lung-mask fine-tuning, evaluation"),
    ("kermany-pediatric", "Kermany et al. 2018, paediatric (age 1-5) films, Normal / Bacterial / Viral-Other "
     "labels turned into report sentences by `training/reports/templates.py`", "CC BY 4.0",
     "pretraining, evaluation"),
    ("jsrt-scr", "JSRT adult PA films with SCR expert masks of lungs, heart and clavicles",
     "research use", "pretraining (nodule-label template reports), segmentation fine-tuning, evaluation"),
]


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _classification(report: dict[str, Any]) -> list[str]:
    rows = ["| validation set | finding | AUROC | positives | negatives | max-F1 | threshold |",
            "|---|---|---|---|---|---|---|"]
    for source, findings in report.get("classification", {}).items():
        for name, m in findings.items():
            rows.append(f"| {source} | {name} | {_f(m.get('auroc'))} | {m.get('n_pos')} | {m.get('n_neg')} | "
                        f"{_f(m.get('max_f1'))} | {_f(m.get('threshold'))} |")
    return rows


def _grounding(report: dict[str, Any]) -> list[str]:
    anatomy = report.get("grounding", {}).get("anatomy", {})
    rows = ["| anatomy query | reference | n | pointing game | IoU | Dice | CNR |",
            "|---|---|---|---|---|---|---|"]
    for name, m in anatomy.items():
        rows.append(f"| {name} | {m.get('region')} | {m.get('n')} | {_f(m.get('pointing_game'))} | "
                    f"{_f(m.get('iou'))} | {_f(m.get('dice'))} | {_f(m.get('cnr'))} |")
    return rows


def _segmentation(report: dict[str, Any]) -> list[str]:
    rows = ["| structure | n | Dice | IoU |", "|---|---|---|---|"]
    for name, m in report.get("segmentation", {}).items():
        if isinstance(m, dict) and "dice" in m:
            rows.append(f"| {name} | {m.get('n')} | {_f(m.get('dice'))} | {_f(m.get('iou'))} |")
    return rows


def render_default_card(metadata: dict[str, Any], report: dict[str, Any], command: str) -> str:
    """Markdown card for the default bundle."""
    arch = metadata["architecture"]
    graph = metadata["graphs"]["image_model"]
    training = metadata.get("training_data", {})
    counts = report.get("n_images_by_source", {})
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
        "offline here), plus a U-Net segmentation head for lungs, heart and clavicles. Text queries:",
        "all-MiniLM-L6-v2 (frozen).",
        "",
        "## Data",
        "",
        "| set | what | licence | used for |",
        "|---|---|---|---|",
        *[f"| {name} | {what} | {licence} | {use} |" for name, what, licence, use in DATA_SOURCES],
        "",
        "Splits: covid-chestxray's own patient-level `split` column; Kermany and JSRT 80/20 by a",
        "SHA-256 hash of the file name. Lateral films are excluded from training and refused by the service.",
        f"Validation images evaluated: {counts or report.get('n_images')}.",
        "",
        "## Training recipe",
        "",
        f"`{command}` (training/recipes/default_model.py) runs every stage: pretraining with",
        "`training/configs/default_cxr.yaml` (all five MeDSLIP losses, released weights; ResNet-18,",
        "16 epochs, lr 3e-4, bf16 autocast, 1 thread), segmentation fine-tuning with",
        "`training/configs/finetune_seg_jsrt.yaml` (trunk unfrozen, 10 epochs, bf16), evaluation, export,",
        "then the evaluation of the exported ONNX bundle that this card reports.",
        "Compute: one 2-core x86-64 CPU, no GPU.",
        f"Graph: `{graph['file']}`, {graph.get('precision')} weights with float32 inputs/outputs; max abs",
        "difference from PyTorch fp32: "
        + ", ".join(f"{k} {v:.1e}" for k, v in graph.get("parity_max_abs_diff", {}).items()) + ".",
        f"Checkpoints: `{training.get('checkpoint')}` (step {training.get('step')}), "
        f"`{training.get('seg_checkpoint')}`.",
        "",
        "## Validation results (ONNX bundle, ONNX Runtime CPU)",
        "",
        "Zero-shot existence scores of the pathology stream. `pneumonia` on covid-chestxray has very few",
        "normal films (see the negatives column): treat that AUROC as unreliable. Operating points",
        "(`threshold`) are the max-F1 thresholds on the same validation split, so F1 at them is optimistic.",
        "On these pneumonia-heavy splits max-F1 picks very low thresholds, so the service's `positive` flag",
        "is set for most films: rank by `score`, or choose a threshold for your own operating point.",
        "",
        *_classification(report),
        "",
        "Label-derived report text supervised only `normal`, `pneumonia` (Kermany, JSRT) and `nodule`",
        "(about 70 JSRT training films); the other findings `/classify` reports by default were learned",
        "only from the covid-chestxray clinical notes, so their scores are weak and unvalidated.",
        "",
        "Anatomy grounding (anatomy-stream attention of the lung queries vs lung boxes/masks; the shared",
        "data has no finding-level boxes, so finding grounding could not be measured):",
        "",
        *_grounding(report),
        "",
        "Segmentation (sigmoid > 0.5 at the original image size):",
        "",
        *_segmentation(report),
        "",
        "## Known limitations",
        "",
        "- Tiny training data (about 1,050 pretraining films) from scratch: scores are far weaker and less",
        "  calibrated than a model pretrained on MIMIC-CXR; most of the 75 findings were rarely or never",
        "  seen.",
        "- Paediatric (Kermany) and adult COVID-era films differ in anatomy and acquisition; the model can",
        "  separate the two sources by appearance alone, which inflates pooled figures.",
        "- Frontal views only; laterals and non-chest images are refused by the service, not scored.",
        "- Heatmaps are attention weights, not calibrated localisations.",
        "- What would raise the figures: MIMIC-CXR-scale pretraining",
        "  (`training/configs/mimic_resnet50.yaml`), the released ResNet-50 trunk, longer schedules on a",
        "  GPU, and importing the official weights.",
        "",
    ]
    return "\n".join(lines)
