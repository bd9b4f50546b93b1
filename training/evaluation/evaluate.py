"""`medslip-eval (--checkpoint CKPT [--seg-checkpoint CKPT] | --bundle DIR) --manifest FILE --out DIR`.

Zero-shot classification (AUROC, max-F1, operating points), anatomy grounding and segmentation on the
records of one split, written as `report.json` plus PNG figures. `--bundle` evaluates the exported ONNX
graph on ONNX Runtime: the artefact users get, so that is the figure to publish.

Grounding on the shared data: covid-chestxray `lung_boxes` and JSRT lung masks outline LUNGS, not
findings, so the only grounding that can be measured honestly is anatomy grounding: the anatomy maps of
`right_lung_unspec` / `left_lung_unspec` against the lung boxes/masks. Findings are grounded only where
a record has a finding box or mask (none of the shared sets has).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.contract.imaging import ImagingError, Letterbox, decode_path
from app.contract.vocabulary import is_lateral
from training.data.manifest import Box, ManifestRecord, filter_split, read_manifest
from training.evaluation.labels import chest_region, evaluation_labels, load_masks, lung_regions
from training.evaluation.predictors import EnsemblePredictor, OnnxPredictor, Predictor, TorchPredictor
from training.evaluation.segmentation import LUNG_STRUCTURES, film_probabilities, probability_scores
from training.export.bundle import load_models
from training.export.graph import ImageModelGraph
from training.metrics import (
    DEFAULT_THRESHOLDS,
    GroundingScores,
    box_to_mask,
    classification_metrics,
    finite_mean,
    grounding_scores,
    heat_outside_share,
)
from training.metrics.classification import reliability
from training.metrics.origin_dependence import origin_sections
from training.metrics.plots import plot_overlay, plot_reliability, plot_roc_curves
from training.metrics.source_dependence import source_dependence
from training.model.grounding import GROUNDING_METHODS, PRIOR_STRUCTURES, default_grounding

logger = logging.getLogger(__name__)

#: Sigmoid threshold of the masks whose areas are reported: the service's (the bundles'
#: `segmentation.threshold`), so an area is that of the mask `/segment` returns.
MASK_THRESHOLD = 0.5

REPORT_FILE = "report.json"
@dataclass
class Results:
    """Everything collected while the records stream through the model."""

    scores: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=lambda: defaultdict(dict))
    # source -> finding -> the origin (public copy) of each scored film, parallel to `scores`
    origins: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(dict))
    grounding: dict[str, list[GroundingScores]] = field(default_factory=lambda: defaultdict(list))
    findings: dict[str, list[GroundingScores]] = field(default_factory=lambda: defaultdict(list))
    region_kinds: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    segmentation: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    heat_outside: list[float] = field(default_factory=list)  # per film: mean share over every finding map
    # structure -> (mask area, expert mask area) fractions on films WITH expert masks (JSRT)
    labelled_areas: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    # source -> structure -> mask area fractions on films WITHOUT expert masks (adult NIH films)
    unlabelled_areas: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    by_source: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """A decoded image with the letterbox that maps model outputs back onto it."""

    record: ManifestRecord
    pixels: NDArray[np.float32]  # (H, W) in [0, 1]
    model_input: NDArray[np.float32]  # (3, S, S) letterboxed and normalised
    box: Letterbox


@dataclass
class Evaluator:
    """Streams records through a predictor in batches and collects every per-image figure."""

    predictor: Predictor
    out_dir: Path
    batch_size: int = 8
    include_lateral: bool = False
    max_overlays: int = 6
    findings_only: bool = False  # score finding boxes only (records of other splits, see --boxes-all-splits)
    results: Results = field(default_factory=Results)

    def run(self, records: Sequence[ManifestRecord]) -> Results:
        batch: list[Prepared] = []
        for item in self._prepared(records):
            batch.append(item)
            if len(batch) == self.batch_size:
                self._flush(batch)
        if batch:
            self._flush(batch)
        return self.results

    def _prepared(self, records: Sequence[ManifestRecord]) -> Iterator[Prepared]:
        spec = self.predictor.info.preprocessing
        for record in records:
            if is_lateral(record.view) and not self.include_lateral:
                self.results.skipped["lateral_view"] += 1
                continue
            try:
                decoded = decode_path(record.image, allow_lateral=self.include_lateral)
            except ImagingError as exc:  # count the code only: details may name the file
                self.results.skipped[exc.code] += 1
                continue
            model_input, box, _ = spec.apply(decoded.pixels)
            yield Prepared(record, decoded.pixels, model_input, box)

    def _flush(self, batch: list[Prepared]) -> None:
        images = np.stack([item.model_input for item in batch]).astype(np.float32)  # (B, 3, S, S)
        outputs = self.predictor.predict(images)
        for index, item in enumerate(batch):
            if self.findings_only:
                self._finding_grounding(item, outputs["pathology_maps"][index])
                continue
            self.results.by_source[item.record.source] += 1
            self._classification(item, outputs["pathology_probs"][index])
            self._grounding(item, outputs["anatomy_maps"][index])
            self._finding_grounding(item, outputs["pathology_maps"][index])
            masks = load_masks(item.record, item.pixels.shape)  # {} for films without expert masks
            self._heat_outside_chest(item, masks, outputs["pathology_maps"][index])
            if self.predictor.info.structures and masks:
                self._segmentation(item, masks, outputs["segmentation_logits"][index])
            elif self.predictor.info.structures:
                self._unlabelled_areas(item, outputs["segmentation_logits"][index])
        batch.clear()

    def _classification(self, item: Prepared, probabilities: NDArray[np.float32]) -> None:
        """probabilities (Qp,) -> one (label, score) pair per labelled finding."""
        names = self.predictor.info.pathology
        for name, value in evaluation_labels(item.record).items():
            pairs = self.results.scores[item.record.source].setdefault(name, [])
            pairs.append((value, float(probabilities[names.index(name)])))
            self.results.origins[item.record.source].setdefault(name, []).append(item.record.origin)

    def _grounding(self, item: Prepared, anatomy_maps: NDArray[np.float32]) -> None:
        """anatomy_maps (Qa, G, G) -> grounding scores of the lung queries that have a region."""
        shape = (int(item.pixels.shape[0]), int(item.pixels.shape[1]))
        for query, (kind, region) in lung_regions(item.record, shape).items():
            heatmap = item.box.to_original(anatomy_maps[self.predictor.info.anatomy.index(query)])  # (H, W)
            self.results.grounding[query].append(grounding_scores(heatmap, region))
            self.results.region_kinds[query].add(kind)
            if len(self.results.figures) < self.max_overlays:
                name = f"overlay_{len(self.results.figures):02d}_{query}.png"
                title = f"{query} ({item.record.source})"
                plot_overlay(item.pixels, heatmap, region, title, self.out_dir / name)
                self.results.figures.append(name)

    def _finding_grounding(self, item: Prepared, pathology_maps: NDArray[np.float32]) -> None:
        """pathology_maps (Qp, G, G) -> grounding scores of every finding box (NIH radiologist boxes)."""
        boxes = finding_boxes(item.record, pathology_maps, self.predictor.info.pathology, item.box,
                              item.pixels.shape)
        for box, heatmap, region in boxes:
            self.results.findings[box.label].append(grounding_scores(heatmap, region))
            if len(self.results.figures) < self.max_overlays:
                name = f"overlay_{len(self.results.figures):02d}_{box.label}.png"
                plot_overlay(item.pixels, heatmap, region, f"{box.label} ({item.record.source})",
                             self.out_dir / name)
                self.results.figures.append(name)

    def _heat_outside_chest(self, item: Prepared, masks: dict[str, NDArray[np.bool_]],
                            pathology_maps: NDArray[np.float32]) -> None:
        """pathology_maps (Qp, G, G) -> the mean share of heat outside the film's expert chest region
        (lungs and heart, grown by one token) over every finding's map, for films with those masks."""
        region = chest_region(masks, PRIOR_STRUCTURES, int(pathology_maps.shape[-1]))
        if region is None:
            return
        shares = [heat_outside_share(item.box.to_original(m), region) for m in pathology_maps]  # (H, W) each
        self.results.heat_outside.append(float(np.nanmean(shares)))

    def _unlabelled_areas(self, item: Prepared, logits: NDArray[np.float32]) -> None:
        """logits (K, S, S) of a film without expert masks -> the share of the film each structure's
        mask covers, the mask `/segment` returns. Why: Dice is only measured on JSRT and covid films; a
        mask that floods adult NIH films (a heart over half the film) passes every Dice and shows here."""
        areas = self.results.unlabelled_areas[item.record.source]
        for name, area in self._mask_areas(item, logits).items():
            areas[name].append(area)

    def _mask_areas(self, item: Prepared, logits: NDArray[np.float32]) -> dict[str, float]:
        """logits (K, S, S) -> the share of the film each structure's mask covers."""
        structures = self.predictor.info.structures
        return _areas(film_probabilities(structures, item.box, logits, structures))

    def _segmentation(self, item: Prepared, masks: dict[str, NDArray[np.bool_]],
                      logits: NDArray[np.float32]) -> None:
        """logits (K, S, S) -> Dice/IoU of every structure the record has a mask of (+ lungs union), and
        the share of the film each of those masks covers; every channel resized to the film once."""
        structures = self.predictor.info.structures
        probs = film_probabilities(structures, item.box, logits, set(masks) | LUNG_STRUCTURES)
        for name, values in probability_scores(masks, probs).items():
            self.results.segmentation[name].append(values)
        for name, area in _areas({name: probs[name] for name in masks if name in probs}).items():
            self.results.labelled_areas[name].append((area, float(masks[name].mean())))


def _areas(probs: Mapping[str, NDArray[np.float32]]) -> dict[str, float]:
    """(H, W) probabilities -> the share of the film each structure's mask covers, the mask `/segment`
    returns (sigmoid >= 0.5): one definition for films with and without expert masks."""
    return {name: float((prob >= MASK_THRESHOLD).mean()) for name, prob in probs.items()}


def _classification_section(results: Results, split: str, target_sensitivity: float,
                            out_dir: Path) -> dict[str, dict[str, Any]]:
    """Per-source metrics (and ROC figures), then "all": every source pooled per finding."""
    """report.json: per-source and pooled classification, anatomy grounding, segmentation, figures."""
    classification: dict[str, dict[str, Any]] = {}
    pooled: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for source, findings in sorted(results.scores.items()):
        classification[source] = {}
        curves = {}
        for name, pairs in findings.items():
            labels = np.array([p[0] for p in pairs], dtype=np.int64)
            scores = np.array([p[1] for p in pairs], dtype=np.float64)
            metrics = classification_metrics(name, labels, scores, target_sensitivity)
            classification[source][name] = metrics.to_dict()
            curves[name] = (labels, scores)
            pooled[name].extend(pairs)
        figure = f"roc_{source}.png"
        plot_roc_curves(curves, f"{source} ({split})", out_dir / figure)
        results.figures.append(figure)
    classification["all"] = {
        name: classification_metrics(name, [p[0] for p in pairs], [p[1] for p in pairs],
                                     target_sensitivity).to_dict()
        for name, pairs in pooled.items()
    }
    tables = {name: reliability([p[0] for p in pairs], [p[1] for p in pairs])
              for name, pairs in sorted(pooled.items()) if len({p[0] for p in pairs}) == 2}
    if tables:
        title = f"reliability, all sources pooled ({split})"
        plot_reliability(tables, title, out_dir / "reliability_all.png")
        results.figures.append("reliability_all.png")
    return classification


def finding_boxes(
    record: ManifestRecord,
    pathology_maps: NDArray[np.float32],
    names: Sequence[str],
    letterbox: Letterbox,
    shape: tuple[int, ...],
) -> Iterator[tuple[Box, NDArray[np.float32], NDArray[np.bool_]]]:
    """(box, heat map of its finding in original pixels (H, W), box mask (H, W)) for every radiologist
    box of `record` whose finding is one of `names`, the row order of `pathology_maps` (Qp, G, G)."""
    rows, columns = int(shape[0]), int(shape[1])
    for box in record.boxes:
        if box.label in names:
            heatmap = letterbox.to_original(pathology_maps[list(names).index(box.label)])  # (H, W)
            yield box, heatmap, box_to_mask((box.x, box.y, box.w, box.h), (rows, columns))


def grounding_summary(items: Sequence[GroundingScores], region: str) -> dict[str, Any]:
    """Mean figures of one query's grounding scores (pointing game, IoU/Dice over thresholds, CNR,
    heat-in-region ratio)."""
    return {
        "region": region, "n": len(items),
        "pointing_game": finite_mean([float(s.pointing_hit) for s in items]),
        "iou": finite_mean([s.iou for s in items]), "dice": finite_mean([s.dice for s in items]),
        "cnr": finite_mean([s.cnr for s in items]), "n_cnr": int(sum(not np.isnan(s.cnr) for s in items)),
        "heat_ratio": finite_mean([s.heat_ratio for s in items]),
    }


def _area_medians(areas: Sequence[tuple[float, float]] | None) -> dict[str, float]:
    """Median share of the film the mask covers and the expert mask covers: the reference for the
    areas reported on films without expert masks (`segmentation_unlabelled`)."""
    if not areas:
        return {}
    predicted, expert = np.asarray(areas, dtype=np.float64).T  # (N,), (N,)
    return {"median_area": float(np.median(predicted)), "expert_median_area": float(np.median(expert))}


def build_report(results: Results, predictor: Predictor, *, split: str, manifests: Sequence[Path],
                 target_sensitivity: float, out_dir: Path) -> dict[str, Any]:
    """report.json: per-source and pooled classification, anatomy grounding, segmentation, figures."""
    classification = _classification_section(results, split, target_sensitivity, out_dir)
    grounding = {
        query: grounding_summary(items, ", ".join(sorted(results.region_kinds[query])))
        for query, items in sorted(results.grounding.items())
    }
    findings = {name: grounding_summary(items, "finding boxes")
                for name, items in sorted(results.findings.items())}
    every_box = [score for items in results.findings.values() for score in items]
    if every_box:
        findings["all"] = grounding_summary(every_box, "finding boxes")
    segmentation = {
        name: {"n": len(items), "dice": finite_mean([i["dice"] for i in items]),
               "iou": finite_mean([i["iou"] for i in items]),
               **_area_medians(results.labelled_areas.get(name))}
        for name, items in sorted(results.segmentation.items())
    }
    info = predictor.info
    outside = results.heat_outside
    heat_outside = {
        "n_films": len(outside), "mean": finite_mean(outside), "max_film": max(outside) if outside else None,
        "note": "share of each finding map's heat outside the film's expert lungs-and-heart masks grown by "
                "one token, averaged over every finding, then over the films with those masks (JSRT)",
    }
    return {
        "schema_version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "evaluated": {"kind": info.kind, "name": info.name, "sha256": info.sha256},
        "split": split,
        "manifests": [path.name for path in manifests],
        "n_images": int(sum(results.by_source.values())),
        "n_images_by_source": dict(sorted(results.by_source.items())),
        "n_skipped": dict(sorted(results.skipped.items())),
        "target_sensitivity": target_sensitivity,
        "classification": classification,
        "source_dependence": source_dependence(results.scores),
        "origin_dependence": origin_sections(results.scores, results.origins),
        "grounding": {
            "note": "anatomy grounding: anatomy maps of right/left lung vs lung masks or boxes (lungs, not "
                    "findings); maps min-max normalised, IoU/Dice averaged over thresholds",
            "thresholds": list(DEFAULT_THRESHOLDS),
            "anatomy": grounding,
            "findings": findings,
            "heat_outside_chest": heat_outside,
            "findings_note": "finding heat maps (pathology_maps of the graph) vs radiologist finding boxes; "
                             "heat_ratio = share of heat in the box / box share of the image (flat map = 1)",
        },
        "segmentation": segmentation,
        "segmentation_unlabelled": {
            source: {name: {"n": len(values), "median_area": float(np.median(values)),
                            "share_over_30pct": float(np.mean(np.asarray(values) > 0.3))}
                     for name, values in sorted(by_structure.items())}
            for source, by_structure in sorted(results.unlabelled_areas.items())
        },
        "figures": results.figures,
    }


def _predictor(args: argparse.Namespace) -> Predictor:
    if args.bundle is not None:
        return OnnxPredictor(args.bundle, runtime=args.runtime)
    members: list[Predictor] = []
    seg_checkpoints = args.seg_checkpoint or [None] * len(args.checkpoint)
    for checkpoint, seg_checkpoint in zip(args.checkpoint, seg_checkpoints, strict=True):
        model, segmentation = load_models(checkpoint, seg_checkpoint)
        grounding = args.grounding or default_grounding(segmentation is not None)
        members.append(TorchPredictor(ImageModelGraph(model, segmentation, grounding), checkpoint))
    return members[0] if len(members) == 1 else EnsemblePredictor(members)


def main(argv: list[str] | None = None) -> int:
    """Evaluate; writes report.json and figures under --out, prints the report path on stdout."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, nargs="+",
                        help="MeDSLIP checkpoint (PyTorch); several: their ensemble, every output averaged")
    source.add_argument("--bundle", type=Path, help="exported bundle folder (ONNX Runtime)")
    parser.add_argument("--seg-checkpoint", type=Path, nargs="+", default=None,
                        help="with --checkpoint only: one per checkpoint, in the same order")
    parser.add_argument("--runtime", choices=["onnxruntime", "openvino"], default="onnxruntime",
                        help="with --bundle: the service runtime that runs it (MEDSLIP_RUNTIME)")
    parser.add_argument("--grounding", choices=GROUNDING_METHODS, default=None,
                        help="with --checkpoint: finding heat-map method (a bundle carries its own)")
    parser.add_argument("--manifest", type=Path, nargs="+", required=True, help="JSONL manifest(s)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=None, help="first N records per manifest")
    parser.add_argument("--target-sensitivity", type=float, default=0.9)
    parser.add_argument("--max-overlays", type=int, default=6, help="heat-map overlay figures to draw")
    parser.add_argument("--include-lateral", action="store_true", help="also score lateral views")
    parser.add_argument("--boxes-all-splits", action="store_true",
                        help="also score finding grounding on boxed records of every other split "
                             "(boxes are never trained on; reported apart as grounding.findings_all_splits)")
    args = parser.parse_args(argv)
    if args.seg_checkpoint is not None and args.checkpoint is None:
        parser.error("--seg-checkpoint needs --checkpoint (a bundle carries its own segmentation)")
    if args.seg_checkpoint is not None and len(args.seg_checkpoint) != len(args.checkpoint):
        parser.error("give one --seg-checkpoint per --checkpoint")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import matplotlib  # noqa: PLC0415  (backend chosen by the entry point, never at import)

    matplotlib.use("Agg")
    records: list[ManifestRecord] = []
    boxed: list[ManifestRecord] = []
    for manifest in args.manifest:
        every = read_manifest(manifest)
        split_records = filter_split(every, args.split)
        records.extend(split_records[: args.max_images] if args.max_images else split_records)
        boxed.extend(r for r in every if r.boxes)
    args.out.mkdir(parents=True, exist_ok=True)
    predictor = _predictor(args)
    logger.info("evaluating %s %s on %d %s records", predictor.info.kind, predictor.info.name, len(records),
                args.split)
    evaluator = Evaluator(predictor, args.out, batch_size=args.batch_size,
                          include_lateral=args.include_lateral, max_overlays=args.max_overlays)
    results = evaluator.run(records)
    report = build_report(results, predictor, split=args.split, manifests=args.manifest,
                          target_sensitivity=args.target_sensitivity, out_dir=args.out)
    if args.boxes_all_splits and boxed:
        box_results = Evaluator(predictor, args.out, batch_size=args.batch_size, max_overlays=0,
                                findings_only=True).run(boxed)
        every_box = [score for items in box_results.findings.values() for score in items]
        report["grounding"]["findings_all_splits"] = {
            **{name: grounding_summary(items, "finding boxes, every split")
               for name, items in sorted(box_results.findings.items())},
            "all": grounding_summary(every_box, "finding boxes, every split"),
        }
    path = args.out / REPORT_FILE
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    logger.info("evaluated %d images (skipped: %s)", report["n_images"], report["n_skipped"])
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
