"""`medslip-bench decode`: decode + preprocess of the real DICOM films against the model call.

Two questions, each answered side by side in one run so that a busy host shifts both arms alike:

1. Per film: decode + preprocess at full resolution vs at the reduced resolution the service asks
   for (``PreprocessingSpec.decode_long_side``), interleaved A, B, B, A, ..., each with the ONNX
   Runtime model call at batch 1 (what /classify waits for) timed between the films.
2. Whether decoding belongs in the worker threads or in a process pool: the model runs back to back
   in its own thread (a saturated batcher) while clients decode the films in a thread pool or a
   process pool of the same size, in alternating segments. Reported: model calls per second, the
   decodes per second, and how late the event loop ran (codecs that hold the GIL stall it, and with
   it the batcher's releases).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import PIL
from PIL import features

from app.bench import service_input
from app.bench_load import percentiles
from app.contract.bundle import Bundle, load_bundle
from app.contract.imaging import PreprocessingSpec, decode_bytes
from app.contract.imaging.reduced import set_j2k_threads
from app.contract.locations import REPO_ROOT, shared_data_dir
from app.runtime import ImageModelRunner, OrtImageModel

logger = logging.getLogger(__name__)

POOL_KINDS = ("threads", "processes")


@dataclass(frozen=True)
class Film:
    name: str
    data: bytes


def model_input(data: bytes, spec: PreprocessingSpec, reduced: bool) -> np.ndarray:
    """Decode + preprocess as the service does (body part not checked: the hip films count too)."""
    return service_input(data, None, spec, reduced=reduced, check_body_part=False)  # (3, S, S)


def _pool_job(data: bytes, spec: dict[str, Any], reduced: bool) -> np.ndarray:
    """``model_input`` for a pool worker (module level, so a process pool can pickle it)."""
    return model_input(data, PreprocessingSpec.from_dict(spec), reduced)


def load_films(data_dir: Path) -> list[Film]:
    films = [Film(p.stem, p.read_bytes()) for p in sorted((data_dir / "dicom").glob("*.dcm"))]
    if not films:
        raise SystemExit(f"no DICOM files under {data_dir / 'dicom'}")
    return films


def _elapsed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def _input_ms(data: bytes, spec: PreprocessingSpec, reduced: bool) -> float:
    return _elapsed_ms(lambda: model_input(data, spec, reduced))


def _parity(
    data: bytes, spec: PreprocessingSpec, runner: ImageModelRunner, queries: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """How far the reduced decode's model input and pathology probabilities are from the full one's:
    input on the [0, 1] scale (before normalisation), probabilities as the model returns them."""
    full, reduced = (model_input(data, spec, reduced)[None] for reduced in (False, True))  # (1, 3, S, S)
    difference = np.abs(full - reduced)[0, 0] * np.float32(spec.std[0])  # (S, S)
    probs = [runner.run(tensor, *queries).pathology_probs for tensor in (full, reduced)]  # (1, Qp) each
    return {
        "input_max_diff": float(difference.max()),
        "input_mean_diff": float(difference.mean()),
        "probability_max_diff": float(np.abs(probs[0] - probs[1]).max()),
    }


def bench_films(films: list[Film], bundle: Bundle, runner: ImageModelRunner, rounds: int) -> dict[str, Any]:
    """Full vs reduced decode + preprocess per film, interleaved, with a model call after each film."""
    spec = bundle.preprocessing
    tensor = model_input(films[0].data, spec, reduced=True)[None]  # (1, 3, S, S)
    queries = (bundle.pathology_queries, bundle.anatomy_queries)
    runner.run(tensor, *queries)  # warm-up
    samples: dict[str, dict[bool, list[float]]] = {f.name: {False: [], True: []} for f in films}
    model: list[float] = []
    for round_ in range(rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for film in films:
            for reduced in order:
                samples[film.name][reduced].append(_input_ms(film.data, spec, reduced))
            model.append(_elapsed_ms(lambda: runner.run(tensor, *queries)))
    model_p50 = percentiles(model)["p50"]
    rows = []
    for film in films:
        image = decode_bytes(film.data, check_body_part=False, min_long_side=spec.decode_long_side)
        parity = _parity(film.data, spec, runner, queries)
        full_ms = statistics.median(samples[film.name][False])
        reduced_ms = statistics.median(samples[film.name][True])
        rows.append(
            {
                "file": film.name,
                "rows": image.info.rows,
                "columns": image.info.columns,
                "transfer_syntax": image.info.transfer_syntax_name,
                "reduction": image.reduction.factor,
                "full_ms": full_ms,
                "reduced_ms": reduced_ms,
                "speedup": full_ms / reduced_ms,
                "full_vs_model": full_ms / model_p50,
                "reduced_vs_model": reduced_ms / model_p50,
                **parity,
            }
        )
    return {"rounds": rounds, "model_ms": percentiles(model), "films": rows}


@dataclass(frozen=True)
class Rig:
    """What every pool segment shares: the films, the bundle, the model and its one thread."""

    films: list[Film]
    bundle: Bundle
    runner: ImageModelRunner
    model_executor: ThreadPoolExecutor


async def _pool_segment(rig: Rig, executor: Executor, *, seconds: float, clients: int) -> dict[str, Any]:
    """One segment: the model back to back in its thread, `clients` decoding through `executor`."""
    loop = asyncio.get_running_loop()
    spec = rig.bundle.preprocessing.to_dict()
    size = rig.bundle.image_size
    tensor = np.zeros((1, 3, size, size), dtype=np.float32)  # (1, 3, S, S)
    queries = (rig.bundle.pathology_queries, rig.bundle.anatomy_queries)
    end = time.perf_counter() + seconds
    model_calls: list[float] = []
    lateness: list[float] = []
    decodes: list[float] = []
    tick = 0.002

    async def model_loop() -> None:
        while time.perf_counter() < end:
            start = time.perf_counter()
            await loop.run_in_executor(rig.model_executor, rig.runner.run, tensor, *queries)
            model_calls.append((time.perf_counter() - start) * 1000.0)

    async def ticker() -> None:
        while time.perf_counter() < end:
            start = time.perf_counter()
            await asyncio.sleep(tick)
            lateness.append((time.perf_counter() - start - tick) * 1000.0)

    async def client(index: int) -> None:
        position = index
        while time.perf_counter() < end:
            film = rig.films[position % len(rig.films)]
            position += clients
            start = time.perf_counter()
            await loop.run_in_executor(executor, _pool_job, film.data, spec, True)
            decodes.append((time.perf_counter() - start) * 1000.0)

    wall = time.perf_counter()
    await asyncio.gather(model_loop(), ticker(), *(client(i) for i in range(clients)))
    wall = time.perf_counter() - wall
    return {
        "model_per_s": len(model_calls) / wall,
        "decodes_per_s": len(decodes) / wall,
        "model_ms": model_calls,
        "decode_ms": decodes,
        "loop_late_ms": lateness,
    }


def bench_pools(rig: Rig, *, segments: int, seconds: float, workers: int) -> dict[str, Any]:
    """Thread pool vs process pool of `workers`, alternating segments (A, B, B, A, ...)."""
    spec = rig.bundle.preprocessing.to_dict()
    pools: dict[str, Executor] = {
        "threads": ThreadPoolExecutor(workers, thread_name_prefix="bench-decode"),
        "processes": ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")),
    }
    keys = ("model_ms", "decode_ms", "loop_late_ms", "model_per_s", "decodes_per_s")
    collected = {kind: {key: list[float]() for key in keys} for kind in POOL_KINDS}
    try:
        for pool in pools.values():  # start the workers and import the codecs before timing
            data = [f.data for f in rig.films]
            list(pool.map(_pool_job, data, [spec] * len(data), [True] * len(data)))
        for segment in range(segments):
            for kind in POOL_KINDS if segment % 2 == 0 else POOL_KINDS[::-1]:
                result = asyncio.run(_pool_segment(rig, pools[kind], seconds=seconds, clients=workers))
                bucket = collected[kind]
                for key in ("model_ms", "decode_ms", "loop_late_ms"):
                    bucket[key] += result[key]
                bucket["model_per_s"].append(result["model_per_s"])
                bucket["decodes_per_s"].append(result["decodes_per_s"])
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
    summary: dict[str, Any] = {"segments": segments, "seconds": seconds, "workers": workers}
    for kind, bucket in collected.items():
        summary[kind] = {
            "model_ms": percentiles(bucket["model_ms"]),
            "decode_ms": percentiles(bucket["decode_ms"]),
            "loop_late_ms": {**percentiles(bucket["loop_late_ms"]), "max": max(bucket["loop_late_ms"])},
            "model_per_s": statistics.median(bucket["model_per_s"]),
            "decodes_per_s": statistics.median(bucket["decodes_per_s"]),
            "segments_model_per_s": [round(v, 3) for v in bucket["model_per_s"]],
            "segments_decodes_per_s": [round(v, 3) for v in bucket["decodes_per_s"]],
        }
    return summary


def hardware() -> str:
    """CPU model and count from `lscpu` (platform facts when it is absent), plus the codec versions."""
    fields: dict[str, str] = {}
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
        fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in listing.splitlines())}
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = fields.get("Model name", platform.processor() or platform.machine())
    cpus = fields.get("CPU(s)", str(os.cpu_count()))
    threads = fields.get("Thread(s) per core", "?")
    return (
        f"{cpu} ({platform.machine()}), {cpus} CPUs, {threads} thread(s) per core; Python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}, Pillow {PIL.__version__} "
        f"(OpenJPEG {features.version('jpg_2000')}, libjpeg {features.version('jpg')})"
    )


def markdown(result: dict[str, Any]) -> str:
    films = result["films"]
    model = films["model_ms"]
    lines = [
        "# Decode benchmark: full vs reduced resolution, against the model call",
        "",
        f"Measured {result['created']} with `{result['command']}`.",
        "",
        f"Hardware: {result['hardware']}. Load average at start / end: {result['load_average_start']} / "
        f"{result['load_average_end']}.",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"Decode + preprocess (`decode_bytes` + `PreprocessingSpec.apply`, {result['image_size']} px) of "
        f"each real DICOM, median of {films['rounds']} interleaved rounds; the model call is ONNX Runtime "
        f"at batch 1 on the bundle's full graph (what /classify waits for), timed between the films of the "
        f"same rounds: p50 {model['p50']:.1f} ms, p95 {model['p95']:.1f} ms. Input diff: the model input of "
        "the reduced decode against the full one's, on the [0, 1] scale; probability diff: the largest "
        "difference of the pathology probabilities the model gives the two inputs.",
        "",
        "| file | size | transfer syntax | reduction | full ms | reduced ms | speed-up | full / model "
        "| reduced / model | input diff max / mean | probability diff max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in films["films"]:
        lines.append(
            f"| {row['file']} | {row['rows']} x {row['columns']} | {row['transfer_syntax']} | "
            f"1/{row['reduction']} | {row['full_ms']:.1f} | {row['reduced_ms']:.1f} | "
            f"{row['speedup']:.1f}x | {row['full_vs_model']:.2f} | {row['reduced_vs_model']:.2f} | "
            f"{row['input_max_diff']:.3f} / {row['input_mean_diff']:.4f} | "
            f"{row['probability_max_diff']:.4f} |"
        )
    for pools in result.get("pools", []):
        lines += [
            "",
            f"## Decoding in threads or in a process pool ({pools['workers']} workers)",
            "",
            f"{pools['segments']} alternating segments of {pools['seconds']:g} s per pool: the model back to "
            f"back in its own thread while {pools['workers']} clients decode the films above (reduced) "
            "through the pool.",
            "",
            "| pool | model calls/s | model call p50 / p95 ms | decodes/s | decode round trip p50 / p95 ms "
            "| event loop late p50 / p99 / max ms |",
            "|---|---|---|---|---|---|",
        ]
        for kind in POOL_KINDS:
            p = pools[kind]
            late, call, trip = p["loop_late_ms"], p["model_ms"], p["decode_ms"]
            lines.append(
                f"| {kind} | {p['model_per_s']:.2f} | {call['p50']:.1f} / {call['p95']:.1f} | "
                f"{p['decodes_per_s']:.2f} | {trip['p50']:.1f} / {trip['p95']:.1f} | "
                f"{late['p50']:.1f} / {late['p99']:.1f} / {late['max']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medslip-bench decode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="bundle: its model and input size")
    parser.add_argument("--data-dir", type=Path, default=None, help="../shared/data (or MEDSLIP_SHARED_DATA)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per film")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op and JPEG 2000 threads")
    parser.add_argument("--pool-segments", type=int, default=4, help="segments per pool kind (0: skip)")
    parser.add_argument("--pool-seconds", type=float, default=5.0)
    parser.add_argument("--pool-workers", type=int, nargs="+", default=[1, 2], help="pool sizes to compare")
    parser.add_argument("--note", default="", help="paragraph written under the title (context for readers)")
    parser.add_argument("--out-json", type=Path, default=REPO_ROOT / "docs" / "bench" / "decode.json")
    parser.add_argument("--out-md", type=Path, default=REPO_ROOT / "docs" / "bench" / "decode.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    load_start = [round(v, 2) for v in os.getloadavg()]
    films = load_films(args.data_dir or shared_data_dir())
    bundle = load_bundle(args.model_dir)
    runner = OrtImageModel(bundle, device="auto", intra_op_threads=args.threads)
    set_j2k_threads(args.threads)
    result: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "note": args.note,
        "image_size": bundle.image_size,
        "decode_long_side": bundle.preprocessing.decode_long_side,
        "provider": runner.provider,
        "load_average_start": load_start,
    }
    result["films"] = bench_films(films, bundle, runner, args.rounds)
    if args.pool_segments > 0:
        with ThreadPoolExecutor(1, thread_name_prefix="bench-model") as model_executor:
            rig = Rig(films, bundle, runner, model_executor)
            result["pools"] = [
                bench_pools(rig, segments=args.pool_segments, seconds=args.pool_seconds, workers=workers)
                for workers in args.pool_workers
            ]
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    given = list(argv if argv is not None else sys.argv[2:])
    if "--note" in given:
        del given[given.index("--note") : given.index("--note") + 2]
    note = ["--note", "..."] if args.note else []
    result["command"] = shlex.join(["medslip-bench", "decode", *given, *note])
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(result, indent=2))
    args.out_md.write_text(markdown(result))
    sys.stdout.write(markdown(result))
    return 0
