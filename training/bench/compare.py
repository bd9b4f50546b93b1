"""`medslip-bench compare` (or `python -m training.bench.compare`): one interleaved run that compares, on
the same host, thread count and batch sizes, what each serving path costs for the same work.

Candidates, each timed once per round, round-robin (the start rotates one place every round, so a busy
host or a cache warmed by the previous candidate shifts every candidate alike):

- `ort:<graph>:b<B>`: ONNX Runtime, each endpoint's graph (`classify_model`, `image_model`) loaded as the
  service loads it (`precision` auto: fp32 compute of fp16 weights on the CPU);
- `ort-stored:image_model:b<B>`: the full graph at precision "stored" (fp16 compute on the CPU), the
  reason "auto" upcasts;
- `eager:<graph>:b<B>`: PyTorch eager of the same weights doing the same work (`ClassifyGraph`,
  `ImageModelGraph`; eval, inference_mode, fp32);
- `official:b<B>`: the released MeDSLIP architecture (ResNet-50, `medslip_resnet50`, 768-d queries,
  random weights: timing only), its full forward, eager: the research baseline;
- `http:/classify`, `http:/ground`: one request at a time (concurrency 1) to a loopback `medslip-serve`
  of the same bundle with its default settings;
- `http-multipart:/classify`: the default server again, the film as a multipart/form-data upload;
- `http-floor:/floor`: the same film and client to the HTTP stack alone (`app.bench_floor`: FastAPI on
  uvicorn, a route that reads the body and answers): the part of the HTTP overhead no service removes;
- `http-pool:/classify`: the same to a second server with `MEDSLIP_DECODE_INLINE=false` (every upload
  decoded in the decode process): what routing cheap decodes to the worker thread saves;
- `openvino:<graph>:b<B>` and `http-openvino:/classify`, `http-openvino:/ground`: the same graphs on
  OpenVINO (precision auto: film-only layers in bf16 where the CPU has native bf16, else fp32), bare and
  through a third server with `MEDSLIP_RUNTIME=openvino`; only where the openvino package is installed;
- `decode:<film>`: decode + preprocess of each real DICOM in ../shared/data/dicom as the service does it
  (reduced-resolution decoding on).

Also: the served process's resident memory after warm-up and after the run (/proc/<pid>/status).
Results go to JSON and markdown with ratios of medians and the targets met or not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from app.bench import service_input
from app.bench_floor import spawn_floor
from app.bench_load import percentiles, spawn_server
from app.blas import limit_blas_threads
from app.contract.bundle import Bundle, load_bundle
from app.contract.graphs import FULL_GRAPH
from app.contract.imaging.reduced import set_j2k_threads
from app.contract.locations import REPO_ROOT, shared_data_dir
from app.memory import service_memory
from app.runtime import OrtImageModel
from app.runtime_openvino import OpenVinoImageModel, openvino_available
from training.bench.compare_candidates import (
    GRAPHS,
    decode_candidates,
    eager_candidates,
    floor_candidate,
    http_candidates,
    official_candidates,
    official_model,
    runner_candidates,
)
from training.bench.compare_host import hardware
from training.bench.compare_report import (
    HTTP_FILM,
    MULTIPART_GROUP,
    OPENVINO_HTTP_GROUP,
    ROUTING_ENDPOINT,
    ROUTING_GROUP,
    analyse,
    markdown,
)
from training.bench.interleave import interleave
from training.export.bundle import load_models
from training.export.graph import ImageModelGraph
from training.model import MeDSLIP
from training.model.grounding import default_grounding

logger = logging.getLogger(__name__)


def batch_inputs(images: list[np.ndarray], batches: Sequence[int]) -> dict[int, np.ndarray]:
    """(B, 3, S, S) float32 batches of real model inputs, cycling through `images`."""
    return {b: np.stack([images[i % len(images)] for i in range(b)]).astype(np.float32) for b in batches}


def eager_graph(checkpoint: Path, seg_checkpoint: Path | None, bundle: Bundle) -> ImageModelGraph:
    """The bundle's full graph as a PyTorch module, grounding method as the bundle records it."""
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    method = bundle.metadata.graphs[FULL_GRAPH].get("finding_maps", {}).get("method")
    return ImageModelGraph(model, segmentation, method or default_grounding(segmentation is not None)).eval()


def load_films(data_dir: Path) -> dict[str, bytes]:
    """Every DICOM of `data_dir`/dicom by file stem: the decode candidates and the HTTP payload."""
    return {p.stem: p.read_bytes() for p in sorted((data_dir / "dicom").glob("*.dcm"))}


def run_compare(
    bundle_dir: Path,
    full: ImageModelGraph,
    official: MeDSLIP,
    films: dict[str, bytes],
    *,
    threads: int,
    rounds: int,
    batches: Sequence[int] = (1, 8),
    http: bool = True,
    http_film: str = HTTP_FILM,
) -> dict[str, Any]:
    """Build every candidate, interleave them, and return the result (without command and note).
    `threads` sizes ONNX Runtime, torch and OpenJPEG alike, here and in the served processes; numpy's
    BLAS runs one thread, as in the service (app/blas.py): its idle threads spin after every product and
    took the cores from ONNX Runtime's next run (docs/benchmarks.md)."""
    torch.set_num_threads(threads)
    set_j2k_threads(threads)
    limit_blas_threads()
    bundle = load_bundle(bundle_dir)
    auto = OrtImageModel(bundle, device="cpu", intra_op_threads=threads, precision="auto")
    stored = OrtImageModel(bundle, device="cpu", intra_op_threads=threads, precision="stored")
    graphs = tuple(g for g in GRAPHS if g in auto.graphs)
    chest = [service_input(data, None, bundle.preprocessing, check_body_part=False)
             for name, data in films.items() if not name.startswith("wg04_RG2")]
    images = chest or [np.zeros((3, bundle.image_size, bundle.image_size), np.float32)]
    inputs = batch_inputs(images, batches)
    openvino = OpenVinoImageModel(bundle, threads=threads) if openvino_available() else None
    candidates = [
        *runner_candidates(auto, bundle, inputs, "ort", graphs),
        *runner_candidates(stored, bundle, inputs, "ort-stored", (FULL_GRAPH,)),
        *(runner_candidates(openvino, bundle, inputs, "openvino", graphs) if openvino else []),
        *eager_candidates(full, bundle, inputs, graphs),
        *official_candidates(official, batches),
        *decode_candidates(films, bundle),
    ]
    hw = hardware(threads)
    memory: dict[str, Any] = {}
    timings: dict[str, list[dict[str, float]]] = {}
    process = pooled = served_openvino = floor = None
    try:
        if http and http_film in films:
            process, url = spawn_server(bundle_dir, {}, threads, "cpu", ready_timeout_s=600.0)
            memory["after_warm_up"] = service_memory(process.pid)  # ready = every bucket warmed
            client = httpx.Client(base_url=url, timeout=300.0)
            candidates += http_candidates(client, films[http_film], timings)
            candidates += http_candidates(client, films[http_film], timings, MULTIPART_GROUP,
                                          (ROUTING_ENDPOINT,), multipart=True)
            # The HTTP stack alone, same client type and film: the overhead no service change removes.
            floor, floor_url = spawn_floor()
            floor_client = httpx.Client(base_url=floor_url, timeout=300.0)
            candidates.append(floor_candidate(floor_client, films[http_film]))
            # The same service with every upload sent to the decode process: the routing's effect.
            pooled, pooled_url = spawn_server(bundle_dir, {"MEDSLIP_DECODE_INLINE": "false"}, threads, "cpu",
                                              ready_timeout_s=600.0)
            pooled_client = httpx.Client(base_url=pooled_url, timeout=300.0)
            candidates += http_candidates(pooled_client, films[http_film], timings, ROUTING_GROUP,
                                          (ROUTING_ENDPOINT,))
            if openvino is not None:  # the same service on OpenVINO
                served_openvino, openvino_url = spawn_server(
                    bundle_dir, {"MEDSLIP_RUNTIME": "openvino"}, threads, "cpu", ready_timeout_s=600.0)
                memory["openvino_after_warm_up"] = service_memory(served_openvino.pid)
                openvino_client = httpx.Client(base_url=openvino_url, timeout=300.0)
                candidates += http_candidates(openvino_client, films[http_film], timings, OPENVINO_HTTP_GROUP)
        logger.info("interleaving %d candidates x %d rounds", len(candidates), rounds)
        samples, order = interleave(candidates, rounds)
        if process is not None:
            memory["after_run"] = service_memory(process.pid)
            memory["pid"] = process.pid
    finally:
        for server in (process, pooled, served_openvino, floor):
            if server is not None:
                server.terminate()
                server.wait(timeout=60)
    groups = {c.name: (c.group, c.batch) for c in candidates}
    table = {
        name: {"group": groups[name][0], "batch": groups[name][1], **percentiles(values), "samples": values}
        for name, values in samples.items()
    }
    p50 = {name: percentiles(values)["p50"] for name, values in samples.items()}
    rss = memory["after_warm_up"]["rss_mb"] if memory else None
    server_ms = {
        endpoint: {key: float(np.median([t[key] for t in rows[1:]])) for key in rows[0]}
        for endpoint, rows in timings.items()
        if len(rows) > 1  # the first answered the warm-up round
    }
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hw,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "bundle": {"dir": str(bundle_dir), "name": bundle.name, "version": bundle.version,
                   "precisions": dict(auto.precisions), "stored_precisions": dict(stored.precisions),
                   "openvino": None if openvino is None else openvino.provider},
        "rounds": rounds,
        "batches": list(batches),
        "http_film": http_film,
        "order_first_rounds": order[: 2 * len(candidates)],
        "candidates": table,
        "memory": memory,
        **analyse(p50, batches, graphs, rss_mb=rss, server_ms=server_ms, http_film=http_film),
    }


def build_parser() -> argparse.ArgumentParser:
    """The CLI; its description is the module docstring, so `--help` lists every candidate."""
    parser = argparse.ArgumentParser(
        prog="medslip-bench compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="bundle (served and timed in-process)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="MeDSLIP checkpoint of the bundle")
    parser.add_argument("--seg-checkpoint", type=Path, help="segmentation checkpoint of the bundle")
    parser.add_argument("--data-dir", type=Path, default=None, help="../shared/data (MEDSLIP_SHARED_DATA)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads of ONNX Runtime, torch and the served process alike")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--no-http", action="store_true", help="skip the loopback server")
    parser.add_argument("--note", default="", help="paragraph written under the title")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "bench",
                        help="writes DIR/compare.json and DIR/compare.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write DIR/compare.json and DIR/compare.md (`app/bench.py` dispatches
    `medslip-bench compare` here, importing torch only then)."""
    given = list(argv if argv is not None else sys.argv[1:])
    args = build_parser().parse_args(given)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if 1 not in args.batches:
        raise SystemExit("medslip-bench compare: --batches must include 1 (the targets are at batch 1)")
    bundle = load_bundle(args.model_dir)
    full = eager_graph(args.checkpoint, args.seg_checkpoint, bundle)
    films = load_films(args.data_dir or shared_data_dir())
    result = run_compare(args.model_dir, full, official_model(), films, threads=args.threads,
                         rounds=args.rounds, batches=args.batches, http=not args.no_http)
    if "--note" in given:  # printed on its own; keep the command line readable
        del given[given.index("--note") : given.index("--note") + 2]
    noted = ["--note", "..."] if args.note else []
    result["command"] = shlex.join(["medslip-bench", "compare", *given, *noted])
    result["note"] = args.note
    result["git_commit"] = _git_commit()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.out / "compare.md").write_text(text)
    sys.stdout.write(text)
    return 0


def _git_commit() -> str:
    """The checked-out commit, recorded so a stored result can be traced to the code that made it."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
