"""`python -m training.evaluation.compare_grounding --checkpoint CKPT --seg-checkpoint SEG --manifest F ...`.

Scores every finding heat-map method of `training.model.grounding` on the same finding boxes (NIH
radiologist boxes of every split: boxes are never trained on) and prints one Markdown table: pointing
game, heat-in-box ratio (flat map = 1), IoU and Dice averaged over thresholds 0.1-0.5. This is the
measurement behind the method the exported graph uses (`default_grounding`). With a segmentation
checkpoint it also scores `attribution_prior`: the positive direct logit attribution of every token
(`grounding_attribution`) times the same body prior, a screened alternative that no graph serves; and with
`--evidence-head` (a head fit by `grounding_evidence`) `evidence_prior`, that head's token evidence times the
same prior, another; and `query_contrast_prior`, the layer-mean attention less its mean over every
pathology query (what the query attends to beyond where the decoder looks for all of them) times the
same prior, a third.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.contract.imaging import Letterbox, PreprocessingSpec, decode_path
from app.contract.vocabulary import PATHOLOGY
from training.data.manifest import ManifestRecord, read_manifest
from training.evaluation.bundle_features import BundleFeatures
from training.evaluation.evaluate import finding_boxes, grounding_summary
from training.evaluation.grounding_attribution import attribution_maps
from training.evaluation.grounding_evidence import EvidenceHead, evidence_maps, load_head
from training.export.bundle import load_models
from training.export.graph import shares_trunk, trunk_pass
from training.metrics import GroundingScores, grounding_scores
from training.model import SEGMENTATION_STRUCTURES, MeDSLIP
from training.model.grounding import (
    GROUNDING_METHODS,
    PRIOR_STRUCTURES,
    GroundingMethod,
    body_prior,
    grounding_maps,
    layer_mean,
    prior_weighted,
    uses_prior,
)

logger = logging.getLogger(__name__)

#: The row of the screened attribution maps (not a `GroundingMethod`: no exported graph computes it).
ATTRIBUTION = "attribution_prior"
#: The row of the screened token evidence maps (`grounding_evidence`), with `--evidence-head`.
EVIDENCE = "evidence_prior"
#: The row of the screened query-contrast maps (`query_contrast_maps`).
CONTRAST = "query_contrast_prior"
#: The row of a bundle's own served maps (`--bundle`).
SERVED = "served"


def attribution_prior_maps(model: MeDSLIP, image: torch.Tensor, grid: torch.Tensor,
                           prior: torch.Tensor) -> torch.Tensor:
    """(1, Qp, G, G): the positive token shares of each query's present logit times the body prior,
    as a distribution per query (flat over the prior where no token pushes toward present); `grid` the
    trunk output of the film's pass."""
    shares = attribution_maps(model, image, grid=grid).clamp_min(0.0) + 1e-9  # (1, Qp, G, G)
    return prior_weighted(shares, prior)


def query_contrast_maps(layer_maps: Sequence[torch.Tensor], prior: torch.Tensor) -> torch.Tensor:
    """layer_maps [(B, Q, G, G)] per decoder layer, prior (B, 1, G, G) -> (B, Q, G, G) distributions:
    the layer-mean attention's excess over its mean across the queries, times the body prior. Attention
    that every query pays to the same tokens says where the decoder reads, not where a finding is; the
    excess is what is specific to the query (flat over the prior where a query has none)."""
    attention = layer_mean(layer_maps)  # (B, Q, G, G)
    excess = (attention - attention.mean(dim=1, keepdim=True)).clamp_min(0.0)  # (B, Q, G, G)
    return prior_weighted(excess + 1e-9, prior)


def boxed_records(manifests: list[Path]) -> list[ManifestRecord]:
    """Every record with a finding box, in manifest order."""
    return [record for manifest in manifests for record in read_manifest(manifest) if record.boxes]


def add_scores(scores: dict[str, list[GroundingScores]], record: ManifestRecord,
               found: dict[str, torch.Tensor], letterbox: Letterbox, shape: tuple[int, ...]) -> None:
    """Score each row's (1, Qp, G, G) maps of one film on its boxes, in the film's own pixels."""
    for row, row_maps in found.items():
        for _, heatmap, region in finding_boxes(record, row_maps[0].numpy(), PATHOLOGY, letterbox, shape):
            scores[row].append(grounding_scores(heatmap, region))


def compare(checkpoint: Path, seg_checkpoint: Path | None, manifests: list[Path],
            methods: list[GroundingMethod], evidence: EvidenceHead | None = None
            ) -> dict[str, dict[str, Any]]:
    """method (and `ATTRIBUTION` with segmentation) -> grounding summary over every boxed record.

    One forward pass per film; the methods differ only in how they combine its per-layer attention and
    segmentation logits, exactly as `ImageModelGraph` does (`grounding_maps`)."""
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    spec = PreprocessingSpec.trained(model.config.image_size)
    channels = [SEGMENTATION_STRUCTURES.index(name) for name in PRIOR_STRUCTURES]
    shared = shares_trunk(model, segmentation)
    with_prior = segmentation is not None
    screened = [ATTRIBUTION, CONTRAST, *([EVIDENCE] if evidence is not None else [])] if with_prior else []
    rows = [*methods, *screened]
    scores: dict[str, list[GroundingScores]] = {row: [] for row in rows}
    for record in boxed_records(manifests):
        pixels = decode_path(record.image).pixels  # (H, W)
        model_input, letterbox, _ = spec.apply(pixels)
        image = torch.from_numpy(model_input[None].astype(np.float32))  # (1, 3, S, S)
        with torch.no_grad():
            stages, grid = trunk_pass(model, segmentation, image, shared)  # the trunk once when shared
            grid = model.res_features(image) if grid is None else grid  # (1, C, G, G) for every row
            out = model(image, grid=grid)
            logits = None
            if segmentation is not None:  # the prior the graph's maps use: (1, K, S, S)
                logits = segmentation.prior_logits(stages, (image.shape[-2], image.shape[-1]))
            found: dict[str, torch.Tensor] = {  # each (1, Qp, G, G)
                method: grounding_maps(out.pathology_layer_maps, logits, method, channels)
                for method in methods
            }
            if logits is not None:
                prior = body_prior(logits, channels, (grid.shape[-2], grid.shape[-1]))  # (1, 1, G, G)
                found[ATTRIBUTION] = attribution_prior_maps(model, image, grid, prior)
                found[CONTRAST] = query_contrast_maps(out.pathology_layer_maps, prior)
                if evidence is not None:
                    found[EVIDENCE] = evidence_maps(evidence(grid, model.pathology_book), prior)
        add_scores(scores, record, found, letterbox, pixels.shape)
    return {method: grounding_summary(items, "finding boxes") for method, items in scores.items()}


def compare_bundle(bundle_dir: Path, manifests: list[Path], evidence: EvidenceHead | None
                   ) -> dict[str, dict[str, Any]]:
    """The same comparison on an exported bundle's own graph: `SERVED` (the maps it serves),
    `uniform_prior` (its body prior alone) and, with a head, `EVIDENCE`; one graph run per film."""
    features = BundleFeatures(bundle_dir)
    rows = [SERVED, "uniform_prior", *([EVIDENCE] if evidence is not None else [])]
    scores: dict[str, list[GroundingScores]] = {row: [] for row in rows}
    for record in boxed_records(manifests):
        pixels = decode_path(record.image).pixels  # (H, W)
        model_input, letterbox, _ = features.bundle.preprocessing.apply(pixels)
        grid, prior, served = features(model_input[None])  # (1, C, G, G), (1, 1, G, G), (1, Qp, G, G)
        found = {SERVED: served, "uniform_prior": prior_weighted(torch.ones_like(served), prior)}
        if evidence is not None:
            with torch.no_grad():
                found[EVIDENCE] = evidence_maps(evidence(grid, features.book), prior)
        add_scores(scores, record, found, letterbox, pixels.shape)
    return {row: grounding_summary(items, "finding boxes") for row, items in scores.items()}


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| method | boxes | pointing game | heat-in-box ratio | IoU | Dice |",
             "|---|---|---|---|---|---|"]
    for method, r in results.items():
        lines.append(f"| {method} | {r['n']} | {r['pointing_game']:.3f} | {r['heat_ratio']:.2f} | "
                     f"{r['iou']:.3f} | {r['dice']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path)
    source.add_argument("--bundle", type=Path, help="an exported bundle: its served maps against the others")
    parser.add_argument("--seg-checkpoint", type=Path, default=None)
    parser.add_argument("--manifest", type=Path, nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", choices=GROUNDING_METHODS, default=list(GROUNDING_METHODS))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--evidence-head", type=Path, default=None,
                        help="a head fit by training.evaluation.grounding_evidence: adds its maps' row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    methods = [m for m in args.methods if args.seg_checkpoint is not None or not uses_prior(m)]
    evidence = None if args.evidence_head is None else load_head(args.evidence_head)[0]
    if args.bundle is not None:
        results = compare_bundle(args.bundle, args.manifest, evidence)
    else:
        results = compare(args.checkpoint, args.seg_checkpoint, args.manifest, methods, evidence)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
