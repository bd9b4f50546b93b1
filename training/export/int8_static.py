"""`medslip-quantize-int8 --bundle DIR --manifest FILE... --version V`: static int8 graph variants.

(The fp16 and dynamic-int8 weight conversions of the exporters are `training/export/weight_precision.py`.)

Static int8 QDQ variants (per-channel int8 weights, 8-bit activations calibrated on REAL preprocessed
films of the TRAIN split) of a schema-2 bundle's graphs, `classify_model` and `image_model`, built from
the fp32 compute graph (fp16-stored weights are upcast in memory, `app.graph_precision`). Each variant is
evaluated against that fp32 graph on the VAL split: AUROC of both per calibrated finding (the bundle's
`operating_points`), the largest probability drift, the mean cosine of the finding heat maps; and timed
against it, interleaved, on the CPU this runs on.

Decision rule (`decide`): a variant ships only when every calibrated finding's |AUROC int8 - AUROC fp32|
is at most 0.005 and the heat maps keep a mean cosine of at least 0.95. Then a NEW bundle version is
written (bundles are immutable): the source bundle's files, `<graph>.int8.onnx` files, and a
`variants.int8` entry per graph carrying the recipe, the drift figures and the timing. Otherwise the
measured reasons are printed and nothing is written (`--force` writes it for experiments, recorded as
failing in the metadata). The service loads the variants with MEDSLIP_PRECISION=int8.

What stays float is chosen by recipe (`RECIPES`): the softmax-attention products (both inputs are
activations; their output is the heat map), the last matmul/conv before each output, the stem (nodes
reading a graph input), or everything but the convolutions. Recipes are tried in the order given; the
first within the bounds is written. Measured recipes on the shipped weights: docs/benchmarks.md,
"int8 on CPU".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.contract.bundle_metadata import BundleMetadata
from app.contract.graphs import GRAPH_COST_ORDER, GRAPH_SIGNATURES, SCHEMA_VERSION
from app.contract.imaging import ImagingError, decode_path
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import is_lateral
from app.graph_precision import fp32_graph_bytes
from training.data.manifest import ManifestRecord, filter_split, read_manifest
from training.evaluation.labels import evaluation_labels
from training.export.int8_measure import (
    MAX_AUROC_DRIFT,
    MIN_MAP_COSINE,
    cpu_info,
    decide,
    measure_drift,
    run_graph,
    time_graph,
)
from training.export.int8_recipes import RECIPES, QuantRecipe, quantize_graph
from training.export.model_card import render_model_card

logger = logging.getLogger(__name__)



def load_inputs(records: Sequence[ManifestRecord], spec: PreprocessingSpec, limit: int
                ) -> tuple[list[NDArray[np.float32]], list[dict[str, int]]]:
    """Up to `limit` frontal images preprocessed per the bundle's spec, with their labels.

    Records are taken in the order of the sha256 of their file name: a fixed shuffle, so a manifest
    sorted by class still gives a mixed sample, identically on every machine.
    """
    images: list[NDArray[np.float32]] = []
    labels: list[dict[str, int]] = []
    shuffled = sorted(records, key=lambda r: hashlib.sha256(Path(r.image).name.encode("utf-8")).hexdigest())
    for record in shuffled:
        if len(images) == limit:
            break
        if is_lateral(record.view):
            continue
        try:
            decoded = decode_path(record.image)
        except ImagingError as exc:
            logger.info("image skipped: %s", exc.code)
            continue
        images.append(spec.apply(decoded.pixels)[0])  # (3, S, S)
        labels.append(evaluation_labels(record))
    return images, labels


# --- graphs -----------------------------------------------------------------------------------------


def write_fp32_graph(bundle_dir: Path, entry: Mapping[str, Any], target: Path) -> str:
    """The fp32 compute graph of a bundle graph entry at `target`; returns how it was obtained."""
    precision = str(entry.get("precision", "fp32"))
    source = bundle_dir / str(entry["file"])
    if precision == "fp32":
        shutil.copyfile(source, target)
        return "fp32"
    if precision == "fp16":
        target.write_bytes(fp32_graph_bytes(source))
        return "fp16 weights upcast to fp32"
    raise ValueError(f"cannot quantise a {precision} graph; start from an fp32 or fp16 bundle")


# --- the bundle -------------------------------------------------------------------------------------


@dataclass
class GraphVariant:
    """A measured int8 variant of one graph, not yet written."""

    graph: str
    path: Path
    drift: dict[str, Any]
    reasons: list[str]
    float_nodes: list[str]
    timing: dict[str, Any]


def calibrated_findings(metadata: BundleMetadata) -> list[str]:
    """The findings whose drift decides: those with an operating point (else those reported)."""
    points = metadata.operating_points
    return list(points) if points else list(metadata.findings_reported)


def build_variants(
    bundle_dir: Path, calibration: Sequence[NDArray[np.float32]], held_out: Sequence[NDArray[np.float32]],
    held_out_labels: Sequence[Mapping[str, int]], scratch: Path, *,
    recipe: QuantRecipe = RECIPES["no-attention-minmax"], findings: Sequence[str] | None = None,
    graphs: Sequence[str] | None = None, max_auroc_drift: float = MAX_AUROC_DRIFT,
    min_map_cosine: float = MIN_MAP_COSINE, timing_repeats: int = 5, timing_threads: Sequence[int] = (1, 2),
    references: dict[str, dict[str, NDArray[np.float32]]] | None = None,
) -> list[GraphVariant]:
    """Quantise, evaluate and time every graph of `graphs` (default: every graph of the bundle, cheapest
    first) in `scratch`; nothing is written to a bundle.

    `references` caches the fp32 outputs on `held_out` by graph across calls (several recipes)."""
    metadata = BundleMetadata.verify(bundle_dir)
    if metadata.schema_version != SCHEMA_VERSION:
        raise ValueError(f"int8 variants are added to schema-{SCHEMA_VERSION} bundles; re-export the bundle")
    books = {f"{stream}_queries": np.load(bundle_dir / section.embeddings_file).astype(np.float32)
             for stream, section in (("pathology", metadata.pathology), ("anatomy", metadata.anatomy))}
    findings = list(findings) if findings is not None else calibrated_findings(metadata)
    variants: list[GraphVariant] = []
    for graph in graphs or [name for name in GRAPH_COST_ORDER if name in metadata.graphs]:
        entry = metadata.graphs[graph]
        fp32_path = scratch / f"{graph}.fp32.onnx"
        source = write_fp32_graph(bundle_dir, entry, fp32_path)
        int8_path = scratch / f"{graph}.{recipe.name}.int8.onnx"
        kept = quantize_graph(fp32_path, int8_path, calibration, books=books,
                              inputs=GRAPH_SIGNATURES[graph][0], recipe=recipe, scratch=scratch)
        cache = references if references is not None else {}
        if graph not in cache:
            cache[graph] = run_graph(fp32_path, graph, held_out, books)
        drift = measure_drift(cache[graph], run_graph(int8_path, graph, held_out, books), held_out_labels,
                              metadata.pathology.names, findings)
        drift["reference"] = source
        timing = time_graph(fp32_path, int8_path, graph, held_out, books=books, threads=timing_threads,
                            repeats=timing_repeats) if timing_repeats else {}
        reasons = decide(drift, max_auroc_drift, min_map_cosine)
        logger.info("%s int8 (%s): worst |dAUROC| %s, reasons %s, timing %s", graph, recipe.name,
                    drift["max_abs_auroc_delta"], reasons, timing)
        variants.append(GraphVariant(graph, int8_path, drift, reasons, kept, timing))
    return variants


def write_variant_bundle(
    bundle_dir: Path, version: str, variants: Sequence[GraphVariant], recipe: QuantRecipe,
    calibration: Mapping[str, Any], *, force: bool = False, max_auroc_drift: float = MAX_AUROC_DRIFT,
    min_map_cosine: float = MIN_MAP_COSINE,
) -> Path | None:
    """`<bundle_dir.parent>/<version>`: the source bundle plus the int8 variants, or None (nothing
    written) when a variant misses the bounds and `force` is not set."""
    failing = [variant for variant in variants if variant.reasons]
    if failing and not force:
        return None
    metadata = BundleMetadata.verify(bundle_dir)
    target = bundle_dir.parent / version
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are immutable")
    with tempfile.TemporaryDirectory(dir=bundle_dir.parent, prefix=f".{version}-") as scratch:
        staged = Path(scratch) / "bundle"
        staged.mkdir()
        for name in metadata.files:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle_dir / name, staged / name)
        metadata.version = version
        for variant in variants:
            file_name = f"{variant.graph}.int8.onnx"
            shutil.copyfile(variant.path, staged / file_name)
            entry = metadata.graphs[variant.graph]
            entry.setdefault("variants", {})["int8"] = {
                "file": file_name,
                "precision": "int8",
                "format": "QDQ",
                "passed": not variant.reasons,
                "failed_bounds": variant.reasons,
                "bounds": {"max_abs_auroc_delta": max_auroc_drift, "min_pathology_maps_mean_cosine":
                           min_map_cosine},
                "quantization": {"recipe": asdict(recipe), "method": recipe.describe(),
                                 "float_nodes": len(variant.float_nodes), "calibration": dict(calibration),
                                 "source_version": bundle_dir.name},
                "drift_vs_fp32": variant.drift,
                "cpu_timing": {"cpu": cpu_info(), "interleaved_median_ms": variant.timing},
            }
        (staged / "MODEL_CARD.md").write_text(render_model_card(metadata.document()), encoding="utf-8")
        metadata.write(staged)
        BundleMetadata.verify(staged)
        staged.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build, measure and (within bounds) write int8 variants; prints the figures of every recipe tried as
    JSON lines, then the new bundle folder, or the reasons nothing was written (exit status 2)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path, help="schema-2 bundle folder (fp32 or fp16)")
    parser.add_argument("--manifest", required=True, type=Path, nargs="+")
    parser.add_argument("--version", required=True, help="version of the new bundle with int8 variants")
    parser.add_argument("--recipe", choices=sorted(RECIPES), nargs="+", default=["no-attention-minmax"],
                        help="recipes tried in order; the first within the bounds is written")
    parser.add_argument("--calibration-split", default="train")
    parser.add_argument("--eval-split", default="val")
    parser.add_argument("--n-calibration", type=int, default=128)
    parser.add_argument("--n-eval", type=int, default=100_000, help="default: the whole split")
    parser.add_argument("--findings", nargs="+", default=None,
                        help="findings whose AUROC drift decides (default: the bundle's operating points)")
    parser.add_argument("--timing-repeats", type=int, default=5, help="0: do not time")
    parser.add_argument("--timing-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--force", action="store_true",
                        help="write the last recipe's variants even when out of bounds (recorded as failing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = BundleMetadata.verify(args.bundle).preprocessing_spec()
    records = [record for manifest in args.manifest for record in read_manifest(manifest)]
    calibration, _ = load_inputs(filter_split(records, args.calibration_split), spec, args.n_calibration)
    held_out, labels = load_inputs(filter_split(records, args.eval_split), spec, args.n_eval)
    if not calibration or not held_out:
        parser.error("no usable calibration or evaluation images in the manifest(s)")
    calibration_info = {"split": args.calibration_split, "n_images": len(calibration),
                        "eval_split": args.eval_split, "n_eval_images": len(held_out)}
    sys.stdout.write(json.dumps({"cpu": cpu_info(), **calibration_info}) + "\n")
    references: dict[str, dict[str, NDArray[np.float32]]] = {}
    with tempfile.TemporaryDirectory(prefix="medslip-int8-") as scratch:
        for index, name in enumerate(args.recipe):
            recipe = RECIPES[name]
            variants = build_variants(args.bundle, calibration, held_out, labels, Path(scratch),
                                      recipe=recipe, findings=args.findings, references=references,
                                      timing_repeats=args.timing_repeats, timing_threads=args.timing_threads)
            report = {"recipe": name, "graphs": {v.graph: {"reasons": v.reasons, "drift_vs_fp32": v.drift,
                                                           "timing": v.timing} for v in variants}}
            sys.stdout.write(json.dumps(report) + "\n")
            sys.stdout.flush()
            last = index == len(args.recipe) - 1
            if any(v.reasons for v in variants) and not (last and args.force):
                continue
            target = write_variant_bundle(args.bundle, args.version, variants, recipe, calibration_info,
                                          force=args.force)
            sys.stdout.write(f"{target}\n")
            return 0
    sys.stdout.write("NOT WRITTEN: no recipe kept every calibrated finding within the bounds\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
