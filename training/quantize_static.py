"""`python -m training.quantize_static --bundle DIR --manifest FILE... --version V`: int8 graph variants.

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
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from app.graph_contract import CLASSIFY_GRAPH, FULL_GRAPH, GRAPH_SIGNATURES, SCHEMA_VERSION
from app.graph_precision import fp32_graph_bytes
from app.imaging import ImagingError, decode_path
from app.imaging.preprocessing import PreprocessingSpec
from training.bundle import verify_bundle, write_metadata
from training.data.manifest import ManifestRecord, filter_split, read_manifest
from training.evaluate import LATERAL_VIEWS, evaluation_labels
from training.metrics import auroc
from training.model_card import render_model_card
from training.onnx_tools import check_onnx, max_abs_diff

logger = logging.getLogger(__name__)

#: Graphs a variant is built for, cheapest first.
QUANTISED_GRAPHS: tuple[str, ...] = (CLASSIFY_GRAPH, FULL_GRAPH)
#: Largest |AUROC int8 - AUROC fp32| of any calibrated finding a shipped variant may have.
MAX_AUROC_DRIFT = 0.005
#: Smallest mean cosine between int8 and fp32 finding heat maps a shipped variant may have.
MIN_MAP_COSINE = 0.95
BATCH = 8
Feeds = dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class QuantRecipe:
    """What is quantised and how activations are calibrated."""

    name: str
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
    calibration: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999
    keep_attention_float: bool = True  # MatMuls of two activations (softmax attention, the heat maps)
    keep_heads_float: bool = True  # the last Conv/MatMul/Gemm before each graph output
    keep_stem_float: bool = False  # the nodes that read a graph input (the trunk's first convolution)
    activations: str = "int8"  # int8 | uint8

    def describe(self) -> str:
        percentile = self.calibration == "percentile"
        calibration = f"percentile {self.percentile}" if percentile else self.calibration
        kept = [label for flag, label in ((self.keep_attention_float, "attention products"),
                                          (self.keep_heads_float, "output heads"),
                                          (self.keep_stem_float, "stem")) if flag]
        return (f"static QDQ, per-channel int8 weights, {self.activations} activations ({calibration} on "
                f"real films); quantised ops {'/'.join(self.op_types)}"
                + (f"; float: {', '.join(kept)}" if kept else ""))


RECIPES: dict[str, QuantRecipe] = {
    recipe.name: recipe
    for recipe in (
        QuantRecipe("all-minmax", keep_attention_float=False, keep_heads_float=False),
        QuantRecipe("no-attention-minmax"),
        QuantRecipe("no-attention-percentile", calibration="percentile"),
        QuantRecipe("no-attention-entropy", calibration="entropy"),
        QuantRecipe("conv-minmax", op_types=("Conv",)),
        QuantRecipe("conv-percentile", op_types=("Conv",), calibration="percentile"),
        QuantRecipe("conv-percentile-u8", op_types=("Conv",), calibration="percentile", activations="uint8"),
        QuantRecipe("conv-minmax-stem-float", op_types=("Conv",), keep_stem_float=True),
        QuantRecipe("conv-minmax-stem-float-u8", op_types=("Conv",), keep_stem_float=True,
                    activations="uint8"),
        QuantRecipe("no-attention-minmax-stem-float", keep_stem_float=True),
    )
}
_CALIBRATION = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy}
_QTYPE = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds preprocessed films `BATCH` at a time with the bundle's query books, only the graph's inputs."""

    def __init__(self, images: Sequence[NDArray[np.float32]], books: Mapping[str, NDArray[np.float32]],
                 inputs: Sequence[str]) -> None:
        self._feeds = iter(list(feeds_for(images, books, inputs)))

    def get_next(self) -> Feeds | None:
        return next(self._feeds, None)


def feeds_for(images: Sequence[NDArray[np.float32]], books: Mapping[str, NDArray[np.float32]],
              inputs: Sequence[str], batch: int = BATCH) -> Iterator[Feeds]:
    """Graph feeds of `images` (each (3, S, S)) in batches of `batch`."""
    for start in range(0, len(images), batch):
        feeds: Feeds = {"image": np.stack(images[start:start + batch]).astype(np.float32)}
        feeds.update({name: books[name] for name in inputs if name != "image"})
        yield feeds


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
        if record.view.upper() in LATERAL_VIEWS:
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


def float_nodes(model: onnx.ModelProto, recipe: QuantRecipe) -> list[str]:
    """Names of the nodes of `recipe.op_types` the recipe keeps in float (nodes_to_exclude)."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    kept: set[str] = set()
    if recipe.keep_stem_float:
        inputs = {value.name for value in graph.input}
        kept.update(node.name for node in graph.node if inputs & set(node.input))
    if recipe.keep_attention_float:
        kept.update(node.name for node in graph.node if node.op_type == "MatMul"
                    and not any(name in constants for name in node.input))
    if recipe.keep_heads_float:
        producer = {out: node for node in graph.node for out in node.output}
        pending = [output.name for output in graph.output]
        seen: set[str] = set()
        while pending:  # walk back from every output to the first quantisable node on each path
            node = producer.get(pending.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in recipe.op_types:
                kept.add(node.name)
            else:
                pending.extend(name for name in node.input if name not in constants)
    ordered = [node.name for node in graph.node if node.name in kept and node.op_type in recipe.op_types]
    return ordered


def quantize_graph(fp32_path: Path, target: Path, calibration: Sequence[NDArray[np.float32]], *,
                   books: Mapping[str, NDArray[np.float32]], inputs: Sequence[str], recipe: QuantRecipe,
                   scratch: Path) -> list[str]:
    """Write the static int8 QDQ graph of `fp32_path` to `target`; returns the nodes kept float."""
    prepared = scratch / f"{fp32_path.stem}.prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    excluded = float_nodes(onnx.load(str(prepared), load_external_data=False), recipe)
    extra: dict[str, Any] = {"CalibTensorRangeSymmetric": False}
    if recipe.calibration == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    quantize_static(
        str(prepared), str(target), ImageCalibrationReader(calibration, books, inputs),
        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(recipe.op_types), per_channel=True,
        activation_type=_QTYPE[recipe.activations], weight_type=QuantType.QInt8,
        calibrate_method=_CALIBRATION[recipe.calibration], nodes_to_exclude=excluded, extra_options=extra,
    )
    check_onnx(target)
    return excluded


def session(source: Path | bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with full graph optimisation and `threads` intra-op threads (as the service makes)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def run_graph(path: Path, graph: str, images: Sequence[NDArray[np.float32]],
              books: Mapping[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
    """The outputs of graph `graph` (at `path`) for every image, batch by batch, stacked."""
    inputs, outputs = GRAPH_SIGNATURES[graph]
    wanted = [name for name in outputs if name in ("pathology_probs", "pathology_maps")]
    runner = session(path)
    runs = [dict(zip(wanted, runner.run(wanted, feeds), strict=True))
            for feeds in feeds_for(images, books, inputs)]
    return {name: np.concatenate([run[name] for run in runs]) for name in wanted}


# --- drift and decision -----------------------------------------------------------------------------


def map_cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean cosine between matching maps (B, Q, G, G), each flattened: 1.0 = same spatial pattern."""
    flat_a = a.reshape(a.shape[0] * a.shape[1], -1).astype(np.float64)  # (B*Q, G*G)
    flat_b = b.reshape(b.shape[0] * b.shape[1], -1).astype(np.float64)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)  # (B*Q,)
    cos = (flat_a * flat_b).sum(1) / (norms + 1e-12)
    return float(cos.mean())


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def measure_drift(reference: Mapping[str, NDArray[np.float32]], quantised: Mapping[str, NDArray[np.float32]],
                  labels: Sequence[Mapping[str, int]], pathology_names: Sequence[str],
                  findings: Sequence[str]) -> dict[str, Any]:
    """int8 vs fp32 on the same images: per calibrated finding the AUROC of both and their difference,
    the largest |probability difference|, and (when the graph has them) the mean heat-map cosine."""
    drift: dict[str, Any] = {
        "n_images": int(reference["pathology_probs"].shape[0]),
        "pathology_probs_max_abs_diff": max_abs_diff(quantised["pathology_probs"],
                                                     reference["pathology_probs"]),
        "auroc": {},
    }
    if "pathology_maps" in reference and "pathology_maps" in quantised:
        drift["pathology_maps_mean_cosine"] = map_cosine(quantised["pathology_maps"],
                                                         reference["pathology_maps"])
    worst: float | None = 0.0
    for name in findings:
        rows = [i for i, image_labels in enumerate(labels) if name in image_labels]
        y = [labels[i][name] for i in rows]
        column = list(pathology_names).index(name)
        fp32 = _finite(auroc(y, reference["pathology_probs"][rows, column])) if rows else None
        int8 = _finite(auroc(y, quantised["pathology_probs"][rows, column])) if rows else None
        delta = None if fp32 is None or int8 is None else int8 - fp32
        drift["auroc"][name] = {"n": len(rows), "n_pos": int(sum(y)), "fp32": fp32, "int8": int8,
                                "delta": delta}
        worst = None if delta is None or worst is None else max(worst, abs(delta))
    drift["max_abs_auroc_delta"] = worst
    return drift


def decide(drift: Mapping[str, Any], max_auroc_drift: float = MAX_AUROC_DRIFT,
           min_map_cosine: float = MIN_MAP_COSINE) -> list[str]:
    """Every measured reason a variant may not ship; [] when it meets the bounds."""
    reasons: list[str] = []
    for name, figures in drift["auroc"].items():
        if figures["delta"] is None:
            reasons.append(f"{name}: AUROC drift not measurable on {figures['n']} labelled images "
                           f"({figures['n_pos']} positive)")
        elif abs(figures["delta"]) > max_auroc_drift:
            reasons.append(f"{name}: |AUROC drift| {abs(figures['delta']):.4f} > {max_auroc_drift} "
                           f"(fp32 {figures['fp32']:.4f}, int8 {figures['int8']:.4f}, n={figures['n']})")
    cosine = drift.get("pathology_maps_mean_cosine")
    if cosine is not None and cosine < min_map_cosine:
        reasons.append(f"heat-map mean cosine {cosine:.4f} < {min_map_cosine}")
    return reasons


# --- speed ------------------------------------------------------------------------------------------


def cpu_info() -> dict[str, Any]:
    """CPU model, core count and the int8/bf16 instruction sets ONNX Runtime's kernels can use."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    return {"model": model, "cores": os.cpu_count(), "flags": {flag: flag in flags for flag in wanted},
            "onnxruntime": ort.__version__}


def time_pair(fp32_path: Path, int8_path: Path, feeds: Feeds, threads: int, repeats: int) -> dict[str, float]:
    """Median ms of the fp32 and int8 graph on the same feeds, run alternately (A B A B ...) so that
    load from other processes falls on both; `speedup` = fp32 ms / int8 ms."""
    runners = {"fp32": session(fp32_path, threads), "int8": session(int8_path, threads)}
    times: dict[str, list[float]] = {key: [] for key in runners}
    for runner in runners.values():
        runner.run(None, feeds)  # first run allocates
    for _ in range(repeats):
        for key, runner in runners.items():
            start = time.perf_counter()
            runner.run(None, feeds)
            times[key].append((time.perf_counter() - start) * 1000.0)
    fp32_ms, int8_ms = float(np.median(times["fp32"])), float(np.median(times["int8"]))
    return {"fp32_ms": round(fp32_ms, 2), "int8_ms": round(int8_ms, 2),
            "speedup": round(fp32_ms / int8_ms, 3)}


def time_graph(fp32_path: Path, int8_path: Path, graph: str, images: Sequence[NDArray[np.float32]], *,
               books: Mapping[str, NDArray[np.float32]], batches: Sequence[int] = (1, BATCH),
               threads: Sequence[int] = (1, 2), repeats: int = 5) -> dict[str, Any]:
    """`time_pair` at every batch size and thread count (keys like "b8_t2")."""
    inputs = GRAPH_SIGNATURES[graph][0]
    timing: dict[str, Any] = {}
    for batch in batches:
        feeds = next(feeds_for(list(images[:batch]), books, inputs, batch))
        for count in threads:
            timing[f"b{batch}_t{count}"] = time_pair(fp32_path, int8_path, feeds, count, repeats)
    return timing


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


def calibrated_findings(metadata: Mapping[str, Any]) -> list[str]:
    """The findings whose drift decides: those with an operating point (else those reported)."""
    points = metadata.get("operating_points") or {}
    return list(points) if points else list(metadata.get("findings_reported", []))


def build_variants(
    bundle_dir: Path, calibration: Sequence[NDArray[np.float32]], held_out: Sequence[NDArray[np.float32]],
    held_out_labels: Sequence[Mapping[str, int]], scratch: Path, *,
    recipe: QuantRecipe = RECIPES["no-attention-minmax"], findings: Sequence[str] | None = None,
    graphs: Sequence[str] = QUANTISED_GRAPHS, max_auroc_drift: float = MAX_AUROC_DRIFT,
    min_map_cosine: float = MIN_MAP_COSINE, timing_repeats: int = 5, timing_threads: Sequence[int] = (1, 2),
    references: dict[str, dict[str, NDArray[np.float32]]] | None = None,
) -> list[GraphVariant]:
    """Quantise, evaluate and time every graph of `graphs` in `scratch`; nothing is written to a bundle.

    `references` caches the fp32 outputs on `held_out` by graph across calls (several recipes)."""
    metadata = verify_bundle(bundle_dir)
    if metadata.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"int8 variants are added to schema-{SCHEMA_VERSION} bundles; re-export the bundle")
    books = {f"{stream}_queries": np.load(bundle_dir / metadata[stream]["embeddings_file"]).astype(np.float32)
             for stream in ("pathology", "anatomy")}
    findings = list(findings) if findings is not None else calibrated_findings(metadata)
    variants: list[GraphVariant] = []
    for graph in graphs:
        entry = metadata["graphs"][graph]
        fp32_path = scratch / f"{graph}.fp32.onnx"
        source = write_fp32_graph(bundle_dir, entry, fp32_path)
        int8_path = scratch / f"{graph}.{recipe.name}.int8.onnx"
        kept = quantize_graph(fp32_path, int8_path, calibration, books=books,
                              inputs=GRAPH_SIGNATURES[graph][0], recipe=recipe, scratch=scratch)
        cache = references if references is not None else {}
        if graph not in cache:
            cache[graph] = run_graph(fp32_path, graph, held_out, books)
        drift = measure_drift(cache[graph], run_graph(int8_path, graph, held_out, books), held_out_labels,
                              metadata["pathology"]["names"], findings)
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
    metadata = verify_bundle(bundle_dir)
    target = bundle_dir.parent / version
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are immutable")
    with tempfile.TemporaryDirectory(dir=bundle_dir.parent, prefix=f".{version}-") as scratch:
        staged = Path(scratch) / "bundle"
        staged.mkdir()
        for name in metadata["files"]:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle_dir / name, staged / name)
        metadata = {key: value for key, value in metadata.items() if key != "files"}
        metadata["version"] = version
        for variant in variants:
            file_name = f"{variant.graph}.int8.onnx"
            shutil.copyfile(variant.path, staged / file_name)
            entry = metadata["graphs"][variant.graph]
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
        (staged / "MODEL_CARD.md").write_text(render_model_card(metadata), encoding="utf-8")
        write_metadata(staged, metadata)
        verify_bundle(staged)
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
    spec = PreprocessingSpec.from_dict(verify_bundle(args.bundle)["preprocessing"])
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
