"""`medslip-bench`: latency and throughput of the service over HTTP vs the same bundle in-process.

Why both: the service's value is batching under load, its cost is overhead at low load. We measure
p50/p95/p99 latency, throughput and mean batch size at several concurrencies (closed loop: each of
`c` clients sends its next request when the previous answer arrives), with batching on and off, and
the bare model time (ONNX Runtime in-process; PyTorch eager when a checkpoint is given) on the same
real images from ../shared/data. Results go to JSON and a markdown table.

`--device cuda` measures the CUDA path (fp16 graphs as stored, IO binding) in-process and in the spawned
servers, and refuses at once on a host whose onnxruntime has no CUDAExecutionProvider; `--out DIR`
writes DIR/service.json and DIR/service.md.

`medslip-bench decode ...` measures decoding instead (full vs reduced resolution, threads vs a process
pool, against the model call): see `app/bench_decode.py`. `medslip-bench memory ...` measures whole
servers under setting variants (resident memory after warm-up and after load, throughput): see
`app/bench_memory.py`. `medslip-bench ops ...` splits each graph's ONNX Runtime time by operator type:
see `app/bench_ops.py`. `medslip-bench compare ...` is the interleaved comparison of ONNX Runtime, PyTorch
eager, the official architecture, HTTP, decoding and RSS (it needs torch): see `training/bench/compare.py`.
The `medslip-bench` command itself is `training/bench/cli.py`: it dispatches there and passes the PyTorch
reference in, so this module never imports `training`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.bench_load import percentiles, run_http, spawn_server
from app.blas import limit_blas_threads
from app.contract.bundle import load_bundle
from app.contract.imaging import PreprocessingSpec, decode_bytes
from app.contract.locations import REPO_ROOT, shared_data_dir
from app.runtime import CUDA, OrtImageModel

logger = logging.getLogger(__name__)

DEFAULT_LEVELS = (1, 4, 16, 64)
BATCHING_ON = {
    "MEDSLIP_MAX_BATCH_SIZE": "8",
    "MEDSLIP_BATCH_BUCKETS": "[1,2,4,8]",
    "MEDSLIP_MAX_DELAY_MS": "5",
}
BATCHING_OFF = {"MEDSLIP_MAX_BATCH_SIZE": "1", "MEDSLIP_BATCH_BUCKETS": "[1]", "MEDSLIP_MAX_DELAY_MS": "0"}


def load_images(data_dir: Path, count: int) -> list[tuple[bytes, str]]:
    """Frontal JPEG chest films from covid-chestxray plus the chest DICOMs: (bytes, media type)."""
    images: list[tuple[bytes, str]] = []
    for path in sorted((data_dir / "dicom").glob("*.dcm")):
        if not path.name.startswith("wg04_RG2"):  # the hip films are refused by design
            images.append((path.read_bytes(), "application/dicom"))
    with (data_dir / "covid-chestxray" / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if len(images) >= count:
                break
            if row["view"] in {"PA", "AP"}:
                images.append(((data_dir / "covid-chestxray" / row["image"]).read_bytes(), "image/jpeg"))
    if not images:
        raise SystemExit(f"no images found under {data_dir}")
    return images[:count]


def service_input(
    data: bytes,
    media_type: str | None,
    spec: PreprocessingSpec,
    *,
    reduced: bool = True,
    check_body_part: bool = True,
) -> np.ndarray:
    """Decode + preprocess as the service does (reduced-resolution decoding unless `reduced` is
    False): the (3, S, S) model input."""
    image = decode_bytes(
        data,
        media_type,
        check_body_part=check_body_part,
        min_long_side=spec.decode_long_side if reduced else None,
    )
    return spec.apply_decoded(image).tensor


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of `repeats` calls (the service warms up too, so no call is discarded)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def require_device(device: str, available: list[str]) -> None:
    """Refuse (SystemExit) `--device cuda` when this onnxruntime offers no CUDAExecutionProvider."""
    if device == "cuda" and CUDA not in available:
        raise SystemExit(
            "medslip-bench: --device cuda needs onnxruntime with the CUDAExecutionProvider "
            f"(onnxruntime-gpu and a visible GPU); this onnxruntime {ort.__version__} offers "
            f"{', '.join(available)}. Run with --device cpu, or on a GPU host."
        )


def bench_in_process(
    model_dir: Path, images: list[tuple[bytes, str]], repeats: int, threads: int, device: str = "auto"
) -> dict[str, Any]:
    """Bare ONNX Runtime at batch 1, and decode+preprocess+model in-process (no HTTP, no queue).

    Both cycle through `images` in the order the concurrency-1 HTTP run sends them, `repeats` calls,
    so the server-overhead figure compares the same image mix. numpy's BLAS runs one thread, as in the
    service (app/blas.py).
    """
    limit_blas_threads()
    bundle = load_bundle(model_dir)
    runner = OrtImageModel(bundle, device=device, intra_op_threads=threads, precision="auto")
    spec = bundle.preprocessing
    tensors = [service_input(data, media, spec)[None] for data, media in images]

    def bare(index: list[int]) -> None:
        runner.run(tensors[index[0] % len(tensors)], bundle.pathology_queries, bundle.anatomy_queries)
        index[0] += 1

    def pipeline(index: list[int]) -> None:
        data, media = images[index[0] % len(images)]
        tensor = service_input(data, media, spec)[None]  # (1, 3, S, S)
        runner.run(tensor, bundle.pathology_queries, bundle.anatomy_queries)
        index[0] += 1

    runner.run(tensors[0], bundle.pathology_queries, bundle.anatomy_queries)  # warm-up, as the service does
    counter_a, counter_b = [0], [0]
    return {
        "provider": runner.provider,
        "io_binding": runner.io_binding,
        "precisions": dict(runner.precisions),
        "onnxruntime_bare_ms": percentiles(time_calls(lambda: bare(counter_a), repeats)),
        "in_process_pipeline_ms": percentiles(time_calls(lambda: pipeline(counter_b), repeats)),
    }


def overhead(server_levels: list[dict[str, Any]], reference: dict[str, float]) -> dict[str, float] | None:
    """Server latency at concurrency 1 minus the in-process reference: ms added and percent, p50 and mean."""
    level_one = next((lv for lv in server_levels if lv["concurrency"] == 1 and lv["latency_ms"]), None)
    if level_one is None:
        return None
    server = level_one["latency_ms"]
    added_p50, added_mean = server["p50"] - reference["p50"], server["mean"] - reference["mean"]
    return {
        "added_ms_p50": added_p50,
        "added_ms_mean": added_mean,
        "pct_p50": added_p50 / reference["p50"] * 100.0 if reference["p50"] > 0 else float("nan"),
        "pct_mean": added_mean / reference["mean"] * 100.0 if reference["mean"] > 0 else float("nan"),
    }


def markdown(result: dict[str, Any]) -> str:
    """The report: environment, in-process reference and one table per server configuration."""
    lines = [
        f"# Service benchmark: {result['label']}",
        "",
        f"Measured {result['created']} on {result['machine']} with `{result['command']}`.",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"Images: {result['images']} real chest X-rays from ../shared/data (DICOM and JPEG), endpoint "
        f"`{result['endpoint']}`, closed loop.",
        "",
    ]
    lines += [
        f"Load average of the host when the run started: {result['load_average']} (shared machine: absolute "
        "figures are noisy; compare rows of the same run).",
        "",
        "Server overhead = HTTP latency at concurrency 1 minus the in-process time on the same image "
        "sequence (same decode + preprocess + model, no HTTP, no queue, no JSON). Throughput is "
        "requests/s over the wall time of the level; mean batch is the `batch_size` the service reported.",
        "",
    ]
    ref = result["in_process"]
    lines += [
        "## In-process reference (batch 1)",
        "",
        "| what | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    rows = [
        ("ONNX Runtime, model only", ref["onnxruntime_bare_ms"]),
        ("decode + preprocess + ONNX Runtime", ref["in_process_pipeline_ms"]),
    ]
    if "torch_eager_ms" in ref:
        # Not comparable with the ONNX Runtime row: a smaller graph on its own thread count.
        threads = ref.get("torch_threads", "?")
        label = (
            f"PyTorch eager, MeDSLIP forward only (no segmentation head; fp32; {threads} torch threads, "
            "not the ONNX Runtime setting)"
        )
        rows.append((label, ref["torch_eager_ms"]))
    for name, stats in rows:
        lines.append(f"| {name} | {stats['p50']:.2f} | {stats['p95']:.2f} | {stats['p99']:.2f} |")
    binding = f", IO binding {'on' if ref['io_binding'] else 'off'}" if "io_binding" in ref else ""
    lines += ["", f"Provider: {ref['provider']}{binding}.", ""]
    for config in result["servers"]:
        lines += [
            f"## Over HTTP: {config['name']}",
            "",
            "| concurrency | p50 ms | p95 ms | p99 ms | throughput req/s | mean batch | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for level in config["levels"]:
            lat = level["latency_ms"] or {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
            lines.append(
                f"| {level['concurrency']} | {lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} | "
                f"{level['throughput_rps']:.1f} | {level['mean_batch_size']:.2f} | {level['errors'] or '-'} |"
            )
        for key, text in (
            ("overhead_vs_pipeline", "decode + preprocess + model in-process"),
            ("overhead_vs_model", "the bare model call"),
        ):
            over = config.get(key)
            if over is not None:
                lines.append(
                    f"\nServer overhead at concurrency 1 over {text}: {over['added_ms_p50']:+.2f} ms p50 "
                    f"({over['pct_p50']:.1f} %), {over['added_ms_mean']:+.2f} ms mean "
                    f"({over['pct_mean']:.1f} %)."
                )
        lines.append("")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medslip-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="bundle to measure (in-process and spawned)"
    )
    parser.add_argument(
        "--url", help="measure this running service instead of spawning batching on/off servers"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="PyTorch checkpoint of the same weights (eager reference)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="../shared/data (default: MEDSLIP_SHARED_DATA)"
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument(
        "--requests", type=int, default=64, help="requests per level (at least 4 x concurrency)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(DEFAULT_LEVELS))
    parser.add_argument("--endpoint", default="/classify")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="execution provider, in-process and in the spawned servers (cuda: refused at once without "
        "CUDAExecutionProvider)",
    )
    parser.add_argument("--out", type=Path, help="write DIR/service.json and DIR/service.md instead")
    parser.add_argument("--label", default="model bundle")
    parser.add_argument("--note", default="", help="paragraph written under the title (context for readers)")
    parser.add_argument("--out-json", type=Path, default=REPO_ROOT / "docs" / "bench" / "service.json")
    parser.add_argument("--out-md", type=Path, default=REPO_ROOT / "docs" / "bench" / "service.md")
    return parser


#: The PyTorch eager reference: (checkpoint, bundle dir, images, calls) -> fields for `in_process`.
EagerReference = Callable[[Path, Path, list[tuple[bytes, str]], int], dict[str, Any]]


def main(argv: list[str] | None = None, *, eager_reference: EagerReference | None = None) -> int:
    """The service benchmark (and `decode`); `eager_reference` times `--checkpoint` in PyTorch
    (given by `training.bench.cli`, since this package never imports torch)."""
    given_argv = list(argv if argv is not None else sys.argv[1:])
    if given_argv[:1] == ["decode"]:
        from app.bench_decode import main as decode_main  # noqa: PLC0415  (its own CLI)

        return decode_main(given_argv[1:])
    if given_argv[:1] == ["memory"]:
        from app.bench_memory import main as memory_main  # noqa: PLC0415  (its own CLI)

        return memory_main(given_argv[1:])
    if given_argv[:1] == ["ops"]:
        from app.bench_ops import main as ops_main  # noqa: PLC0415  (its own CLI)

        return ops_main(given_argv[1:])
    args = build_parser().parse_args(argv)
    if args.checkpoint and eager_reference is None:
        raise SystemExit("medslip-bench: --checkpoint needs the PyTorch reference (run medslip-bench itself)")
    require_device(args.device, ort.get_available_providers())
    if args.out is not None:
        args.out_json, args.out_md = args.out / "service.json", args.out / "service.md"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    images = load_images(args.data_dir or shared_data_dir(), args.images)
    calls = max(args.requests, 4)  # as many as the concurrency-1 HTTP run sends
    reference = bench_in_process(args.model_dir, images, calls, args.threads, args.device)
    if args.checkpoint and eager_reference is not None:
        reference.update(eager_reference(args.checkpoint, args.model_dir, images, calls))
    servers: list[dict[str, Any]] = []
    if args.url:
        servers.append({"name": f"running service {args.url}", "levels": run_http(args.url, args, images)})
    else:
        for name, env in (
            ("batching on (max_batch_size 8, max_delay 5 ms)", BATCHING_ON),
            ("batching off (max_batch_size 1)", BATCHING_OFF),
        ):
            process, url = spawn_server(args.model_dir, env, args.threads, args.device)
            try:
                servers.append({"name": name, "levels": run_http(url, args, images)})
            finally:
                process.terminate()
                process.wait(timeout=60)
    for config in servers:
        config["overhead_vs_pipeline"] = overhead(config["levels"], reference["in_process_pipeline_ms"])
        config["overhead_vs_model"] = overhead(config["levels"], reference["onnxruntime_bare_ms"])
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is printed on its own; keep the command line readable
        del given[given.index("--note") : given.index("--note") + 2]
    command = shlex.join(["medslip-bench", *given, *(["--note", "..."] if args.note else [])])
    result = {
        "label": args.label,
        "note": args.note,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, onnxruntime {ort.__version__}",
        "device": args.device,
        "load_average": load_at_start,
        "images": len(images),
        "endpoint": args.endpoint,
        "in_process": reference,
        "servers": servers,
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(result, indent=2))
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(markdown(result))
    sys.stdout.write(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
