"""Judging an int8 variant against its fp32 graph: drift, CPU timing and the ship decision.

Drift (`measure_drift`): AUROC of both graphs per calibrated finding and their difference, the largest
probability change, the mean cosine of the finding heat maps. Timing (`time_graph`): the fp32 and int8
graphs run interleaved on the same feeds so that load from other processes falls on both, on the CPU
described by `cpu_info`. The decision rule (`decide`) lists every measured reason a variant may not ship.
Kept apart from the recipes (`training.export.int8_recipes`) so the bounds are judged the same way whatever
was quantised.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from app.contract.graphs import GRAPH_SIGNATURES
from training.bench.interleave import Candidate, interleave
from training.export.int8_recipes import BATCH, Feeds, feeds_for
from training.export.onnx_tools import cpu_session, max_abs_diff
from training.host import cpu_flags, cpu_model
from training.metrics import auroc

#: Largest |AUROC int8 - AUROC fp32| of any calibrated finding a shipped variant may have.
MAX_AUROC_DRIFT = 0.005
#: Smallest mean cosine between int8 and fp32 finding heat maps a shipped variant may have.
MIN_MAP_COSINE = 0.95


def run_graph(path: Path, graph: str, images: Sequence[NDArray[np.float32]],
              books: Mapping[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
    """The outputs of graph `graph` (at `path`) for every image, batch by batch, stacked."""
    inputs, outputs = GRAPH_SIGNATURES[graph]
    wanted = [name for name in outputs if name in ("pathology_probs", "pathology_maps")]
    runner = cpu_session(path)
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
    """None for an AUROC that is not defined (one class only), so JSON stays valid."""
    return None if np.isnan(value) else float(value)


def measure_drift(reference: Mapping[str, NDArray[np.float32]], quantised: Mapping[str, NDArray[np.float32]],
                  labels: Sequence[Mapping[str, int]], pathology_names: Sequence[str],
                  findings: Sequence[str], *, names: tuple[str, str] = ("fp32", "int8")) -> dict[str, Any]:
    """A candidate (int8, or another runtime's precision) vs its fp32 reference on the same images: per
    calibrated finding the AUROC of both and their difference, the largest |probability difference|, and
    (when the graph has them) the mean heat-map cosine. `names`: (reference, candidate), the keys of the
    two AUROCs (recorded as `compared`)."""
    ref_name, cand_name = names
    drift: dict[str, Any] = {
        "compared": list(names),
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
        before = _finite(auroc(y, reference["pathology_probs"][rows, column])) if rows else None
        after = _finite(auroc(y, quantised["pathology_probs"][rows, column])) if rows else None
        delta = None if before is None or after is None else after - before
        drift["auroc"][name] = {"n": len(rows), "n_pos": int(sum(y)), ref_name: before, cand_name: after,
                                "delta": delta}
        worst = None if delta is None or worst is None else max(worst, abs(delta))
    drift["max_abs_auroc_delta"] = worst
    return drift


def decide(drift: Mapping[str, Any], max_auroc_drift: float = MAX_AUROC_DRIFT,
           min_map_cosine: float = MIN_MAP_COSINE) -> list[str]:
    """Every measured reason a variant may not ship; [] when it meets the bounds."""
    reasons: list[str] = []
    ref_name, cand_name = drift.get("compared", ("fp32", "int8"))
    for name, figures in drift["auroc"].items():
        if figures["delta"] is None:
            reasons.append(f"{name}: AUROC drift not measurable on {figures['n']} labelled images "
                           f"({figures['n_pos']} positive)")
        elif abs(figures["delta"]) > max_auroc_drift:
            reasons.append(f"{name}: |AUROC drift| {abs(figures['delta']):.4f} > {max_auroc_drift} "
                           f"({ref_name} {figures[ref_name]:.4f}, {cand_name} {figures[cand_name]:.4f}, "
                           f"n={figures['n']})")
    cosine = drift.get("pathology_maps_mean_cosine")
    if cosine is not None and cosine < min_map_cosine:
        reasons.append(f"heat-map mean cosine {cosine:.4f} < {min_map_cosine}")
    return reasons


# --- speed ------------------------------------------------------------------------------------------


def cpu_info() -> dict[str, Any]:
    """CPU model, core count and the int8/bf16 instruction sets ONNX Runtime's kernels can use."""
    model, flags = cpu_model(), cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    return {"model": model, "cores": os.cpu_count(), "flags": {flag: flag in flags for flag in wanted},
            "onnxruntime": ort.__version__}


def time_pair(fp32_path: Path, int8_path: Path, feeds: Feeds, threads: int, repeats: int) -> dict[str, float]:
    """Median ms of the fp32 and int8 graph on the same feeds, run alternately (`interleave`) so that
    load from other processes falls on both; `speedup` = fp32 ms / int8 ms."""
    batch = len(feeds["image"])
    candidates = [
        Candidate(key, "ort", batch, functools.partial(cpu_session(path, threads).run, None, feeds))
        for key, path in (("fp32", fp32_path), ("int8", int8_path))
    ]
    times, _ = interleave(candidates, repeats, warmup=1)  # the warm-up round allocates
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
