"""Model card of the default bundle: what it was trained on, how, how well, and what it must not be used for.

Every figure is read from the bundle's own `medslip-eval --bundle` report, so the card cannot drift from
what the command it names reproduces.
"""

from __future__ import annotations

from typing import Any

from training.model_card import classification_table, grounding_table, segmentation_table

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


def _compute(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "not recorded"
    threads = settings.get("threads") or "the configs'"
    return (f"{settings.get('cpu')} ({settings.get('cores')} cores), {settings.get('precision')} training, "
            f"{threads} compute thread(s) per process")


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
        "`training/configs/default_cxr.yaml` (all five MeDSLIP losses, weighted 1 as released;",
        "ResNet-18, 16 epochs, lr 3e-4), segmentation fine-tuning with",
        "`training/configs/finetune_seg_jsrt.yaml` (trunk unfrozen, 6 epochs, JSRT films repeated",
        "3x per epoch, every structure weighted equally in the loss), evaluation, export,",
        "then the evaluation of the exported ONNX bundle that this card reports (its operating points",
        "come from that same evaluation). `medslip-build-default --check` re-runs only that evaluation",
        "on this bundle and compares every figure below with the card's.",
        f"Compute: {_compute(training.get('compute'))}; no GPU.",
        f"Graph: `{graph['file']}`, {graph.get('precision')} weights with float32 inputs/outputs; max abs",
        "difference from PyTorch fp32: "
        + ", ".join(f"{k} {v:.1e}" for k, v in graph.get("parity_max_abs_diff", {}).items()) + ".",
        f"Checkpoints: `{training.get('checkpoint')}` (step {training.get('step')}), "
        f"`{training.get('seg_checkpoint')}`.",
        "",
        "## Validation results (ONNX bundle, ONNX Runtime CPU)",
        "",
        "Zero-shot existence scores of the pathology stream. `pneumonia` on covid-chestxray has very few",
        "normal films (see the negatives column): treat that AUROC as unreliable. The service's operating",
        "points are the balanced thresholds of the pooled (`all`) rows: Youden's J, the threshold that",
        "maximises sensitivity + specificity on the same validation split, so the sensitivity and",
        "specificity shown at it are optimistic. Max-F1 is listed for comparison (it depends on prevalence",
        "and, on these pneumonia-heavy splits, would flag most films). Choose your own operating point",
        "on local data before relying on the `positive` flag. A finding no better than chance (AUROC <= 0.5",
        "or sensitivity + specificity <= 1 at every threshold) gets no operating point: the service then",
        "applies the default threshold and marks the finding `\"calibrated\": false`, like every finding",
        "without validation data.",
        "",
        *classification_table(report),
        "",
        "Label-derived report text supervised only `normal`, `pneumonia` (Kermany, JSRT) and `nodule`",
        "(about 70 JSRT training films); the other findings `/classify` reports by default were learned",
        "only from the covid-chestxray clinical notes, so their scores are weak and unvalidated.",
        "",
        "Anatomy grounding (anatomy-stream attention of the lung queries vs lung boxes/masks; the shared",
        "data has no finding-level boxes, so finding grounding could not be measured):",
        "",
        *grounding_table(report),
        "",
        "Segmentation (sigmoid >= 0.5 at the original image size, the masks `/segment` returns; `lungs`",
        "is covid-chestxray's one mask of both lungs, scored against the union of the two lung masks):",
        "",
        *segmentation_table(report),
        "",
        "## Known limitations",
        "",
        "- Tiny training data (about 1,050 pretraining films) from scratch: scores are far weaker and less",
        "  calibrated than a model pretrained on MIMIC-CXR; most of the 75 findings were rarely or never",
        "  seen.",
        "- Paediatric (Kermany) and adult COVID-era films differ in anatomy and acquisition; the model can",
        "  separate the two sources by appearance alone, which inflates pooled figures.",
        "- Frontal views only; laterals and non-chest images are refused by the service, not scored.",
        "- Washed-out 8-bit exports (gray range below 0.25 of the scale) are contrast-stretched before",
        "  inference (`washed_out_span` in metadata.json). These 1.0.0 weights were trained before that",
        "  rule existed (it touches 1 of the ~1,050 training films); a rebuild applies it in training too.",
        "- Heatmaps are attention weights, not calibrated localisations; on the example films in",
        "  `docs/examples/` the pneumonia map covers most of the chest.",
        "- Heart and clavicle masks were learned from JSRT alone (digitised 1990s films); on modern",
        "  digital radiographs (the NIH and SIIM examples in `docs/examples/`) the heart mask is visibly",
        "  truncated or misshapen. Lung masks also had covid-chestxray masks and transfer better.",
        "- What would raise the figures: MIMIC-CXR-scale pretraining",
        "  (`training/configs/mimic_resnet50.yaml`), the released ResNet-50 trunk, longer schedules on a",
        "  GPU, and importing the official weights.",
        "",
    ]
    return "\n".join(lines)
