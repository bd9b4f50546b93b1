"""`medslip-bench compare` (or `python -m training.bench_compare`): one interleaved run that compares, on
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
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from app.bench import percentiles, service_input, shared_data_dir, spawn_server
from app.bundle import Bundle, load_bundle
from app.graph_contract import CLASSIFY_GRAPH, ENDPOINT_OUTPUTS, FULL_GRAPH, GraphContractError, choose_graph
from app.runtime import OrtImageModel
from app.settings import REPO_ROOT
from training.export import load_models
from training.export_graph import ImageModelGraph, graph_of
from training.model import MeDSLIP, create_model
from training.model.grounding import default_grounding

logger = logging.getLogger(__name__)

GRAPHS: tuple[str, ...] = (CLASSIFY_GRAPH, FULL_GRAPH)
ENDPOINTS: tuple[str, ...] = ("classify", "ground")
#: The film the decode target is about: 2140 x 1760 JPEG 2000 lossless.
J2K_FILM = "wg04_RG2_J2KR"
#: The film sent over HTTP (a 1024 x 1024 uncompressed chest DX, a typical upload).
HTTP_FILM = "nih_gcp_DX_nofinding"
RSS_TARGET_MB = 1000.0  # 1 GB


@dataclass(frozen=True)
class Candidate:
    """One thing timed: `call()` does the whole unit of work once."""

    name: str
    group: str  # ort | ort-stored | eager | official | http | decode
    batch: int
    call: Callable[[], object]


def interleave(
    candidates: Sequence[Candidate],
    rounds: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, list[float]], list[str]]:
    """Milliseconds per call of every candidate over `rounds` rounds; each round calls every candidate
    once, starting one place further along the list than the round before. `warmup` untimed rounds
    come first. Returns (samples by name, the timed call order)."""
    for _ in range(warmup):
        for candidate in candidates:
            candidate.call()
    samples: dict[str, list[float]] = {c.name: [] for c in candidates}
    order: list[str] = []
    count = len(candidates)
    for round_index in range(rounds):
        shift = round_index % count if count else 0
        for candidate in [*candidates[shift:], *candidates[:shift]]:
            start = clock()
            candidate.call()
            samples[candidate.name].append((clock() - start) * 1000.0)
            order.append(candidate.name)
    return samples, order


# --- candidates -------------------------------------------------------------------------------------


def ort_candidates(
    runner: OrtImageModel, bundle: Bundle, inputs: dict[int, np.ndarray], group: str, graphs: Sequence[str]
) -> list[Candidate]:
    """The bare ONNX Runtime call of each graph in `graphs` at each batch size of `inputs`."""
    endpoint_of = {CLASSIFY_GRAPH: ENDPOINT_OUTPUTS["classify"], FULL_GRAPH: ENDPOINT_OUTPUTS["segment"]}
    out: list[Candidate] = []
    for batch, images in inputs.items():
        for graph in graphs:
            outputs = endpoint_of[graph]
            if choose_graph(outputs, runner.graphs) != graph:
                continue  # a schema-1 bundle has no classify graph

            def call(images: np.ndarray = images, outputs: frozenset[str] = outputs) -> object:
                return runner.run(images, bundle.pathology_queries, bundle.anatomy_queries, outputs=outputs)

            out.append(Candidate(f"{group}:{graph}:b{batch}", group, batch, call))
    return out


def eager_candidates(
    full: ImageModelGraph, bundle: Bundle, inputs: dict[int, np.ndarray], graphs: Sequence[str]
) -> list[Candidate]:
    """PyTorch eager of each graph's module (fp32, eval, inference_mode) on the same inputs."""
    pathology = torch.from_numpy(bundle.pathology_queries)
    anatomy = torch.from_numpy(bundle.anatomy_queries)
    out: list[Candidate] = []
    for batch, images in inputs.items():
        tensor = torch.from_numpy(images)
        for graph in graphs:
            module = graph_of(graph, full).eval()
            args = (tensor, pathology) if graph == CLASSIFY_GRAPH else (tensor, pathology, anatomy)

            def call(module: nn.Module = module, args: tuple[torch.Tensor, ...] = args) -> object:
                with torch.inference_mode():
                    return module(*args)

            out.append(Candidate(f"eager:{graph}:b{batch}", "eager", batch, call))
    return out


def official_model() -> MeDSLIP:
    """The released MeDSLIP architecture and config (ResNet-50 trunk, 768-d Bio_ClinicalBERT queries),
    random weights: the shapes match ../shared/docs/medslip_official_state_dict.json."""
    torch.manual_seed(0)
    return create_model("medslip_resnet50", text_dim=768).eval()


def official_candidates(model: MeDSLIP, batches: Sequence[int], seed: int = 0) -> list[Candidate]:
    """The official model's full forward (both streams, its own query books), eager, fp32."""
    generator = torch.Generator().manual_seed(seed)
    size = model.config.image_size
    out: list[Candidate] = []
    for batch in batches:
        images = torch.randn(batch, 3, size, size, generator=generator)  # content does not change timing

        def call(images: torch.Tensor = images) -> object:
            with torch.inference_mode():
                return model(images)

        out.append(Candidate(f"official:b{batch}", "official", batch, call))
    return out


def decode_candidates(films: dict[str, bytes], bundle: Bundle) -> list[Candidate]:
    """Decode + preprocess of each film as the service does (reduced decoding; body part not checked)."""
    spec = bundle.preprocessing
    out: list[Candidate] = []
    for name, data in films.items():

        def call(data: bytes = data) -> object:
            return service_input(data, None, spec, reduced=True, check_body_part=False)

        out.append(Candidate(f"decode:{name}", "decode", 1, call))
    return out


def http_candidates(
    client: httpx.Client, payload: bytes, timings: dict[str, list[dict[str, float]]]
) -> list[Candidate]:
    """One request at a time to `/classify` and `/ground` of a running service (keep-alive client); the
    `timing_ms` each response reports (queue, decode, infer, post) and its size (`response_kb`) are
    appended to `timings[endpoint]`."""
    out: list[Candidate] = []
    for endpoint in ENDPOINTS:
        timings[endpoint] = []

        def call(endpoint: str = endpoint) -> object:
            response = client.post(
                f"/{endpoint}", content=payload, headers={"Content-Type": "application/dicom"}
            )
            if response.status_code != 200:
                raise RuntimeError(f"/{endpoint} answered {response.status_code}: {response.text[:200]}")
            stages = {k: float(v) for k, v in response.json()["timing_ms"].items()}
            timings[endpoint].append({**stages, "response_kb": len(response.content) / 1000.0})
            return response

        out.append(Candidate(f"http:/{endpoint}", "http", 1, call))
    return out


# --- memory and hardware ----------------------------------------------------------------------------


def proc_status_kib(pid: int, fields: Sequence[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """`fields` of /proc/<pid>/status in KiB ({} where there is no /proc)."""
    path = Path(f"/proc/{pid}/status")
    if not path.is_file():
        return {}
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[key] = int(rest.split()[0])
    return values


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the service's decode processes)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").is_file() else ""
        children.extend(int(value) for value in text.split())
    return sorted(set(children))


def service_memory(pid: int) -> dict[str, Any]:
    """Resident memory of the served process and of its children, in MB (10^6 bytes)."""
    own = proc_status_kib(pid)
    children = {child: proc_status_kib(child) for child in child_pids(pid)}
    return {
        "rss_mb": own.get("VmRSS", 0) * 1024 / 1e6,
        "hwm_mb": own.get("VmHWM", 0) * 1024 / 1e6,
        "children_rss_mb": [v.get("VmRSS", 0) * 1024 / 1e6 for v in children.values()],
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    path = Path("/proc/cpuinfo")
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware(threads: int) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


# --- arithmetic -------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _target(name: str, value: float | None, op: str, bound: float) -> dict[str, Any]:
    met = None if value is None else (value <= bound if op == "<=" else value >= bound)
    return {"target": name, "value": value, "op": op, "bound": bound, "met": met}


def analyse(
    p50: dict[str, float],
    batches: Sequence[int],
    graphs: Sequence[str],
    *,
    rss_mb: float | None = None,
    server_ms: dict[str, dict[str, float]] | None = None,
    http_film: str = HTTP_FILM,
    j2k_film: str = J2K_FILM,
) -> dict[str, Any]:
    """Ratios of medians (`p50`: candidate name -> median ms) and the targets, met or not (None: a
    candidate was not measured). `server_ms`: per endpoint, the medians of the stage times the service
    reported (queue, decode, infer, post).

    HTTP overhead = HTTP - bare graph - decode + preprocess of the same film in-process - the endpoint's
    postprocessing as the service reports it (heat-map PNGs, JSON building): what serving adds beyond
    the work a caller of the bare graph would do too, as a share of the bare graph."""
    get = p50.get
    classify_b1 = get(f"ort:{CLASSIFY_GRAPH}:b1")
    ratios: dict[str, Any] = {
        "classify_vs_official_b1": _ratio(classify_b1, get("official:b1")),
        "eager_over_ort": {
            graph: {f"b{b}": _ratio(get(f"eager:{graph}:b{b}"), get(f"ort:{graph}:b{b}")) for b in batches}
            for graph in graphs
        },
        "official_over_ort": {
            graph: {f"b{b}": _ratio(get(f"official:b{b}"), get(f"ort:{graph}:b{b}")) for b in batches}
            for graph in graphs
        },
        "stored_over_auto_full": {
            f"b{b}": _ratio(get(f"ort-stored:{FULL_GRAPH}:b{b}"), get(f"ort:{FULL_GRAPH}:b{b}"))
            for b in batches
        },
    }
    http: dict[str, Any] = {}
    decode_ms = get(f"decode:{http_film}")
    for endpoint in ENDPOINTS:
        try:
            graph: str | None = choose_graph(ENDPOINT_OUTPUTS[endpoint], graphs)
        except GraphContractError:
            graph = None
        total, bare = get(f"http:/{endpoint}"), get(f"ort:{graph}:b1")
        stages = (server_ms or {}).get(endpoint, {})
        post = stages.get("post")
        added = None
        if total is not None and bare is not None and decode_ms is not None and post is not None:
            added = total - bare - decode_ms - post
        http[endpoint] = {
            "graph": graph,
            "http_ms": total,
            "bare_ms": bare,
            "decode_ms": decode_ms,
            "post_ms": post,
            "server_reported_ms": stages,
            "http_over_bare": _ratio(total, bare),
            "server_added_ms": added,
            "server_overhead_pct": None if added is None or not bare else added / bare * 100.0,
        }
    decode = {
        name.removeprefix("decode:"): {"ms": ms, "over_classify_b1": _ratio(ms, classify_b1)}
        for name, ms in p50.items()
        if name.startswith("decode:")
    }
    targets = [_target("/classify bare <= 0.5x official-architecture eager (batch 1)",
                       ratios["classify_vs_official_b1"], "<=", 0.5)]
    for graph in graphs:
        for b in batches:
            targets.append(_target(f"ORT >= 2x faster than eager, {graph}, batch {b}",
                                   ratios["eager_over_ort"][graph][f"b{b}"], ">=", 2.0))
    for endpoint in ENDPOINTS:
        targets.append(_target(f"HTTP overhead at concurrency 1 <= 10 %, /{endpoint}",
                               http[endpoint]["server_overhead_pct"], "<=", 10.0))
    targets.append(_target("decode + preprocess of the 2k JPEG 2000 lossless film <= 1x /classify model",
                           decode.get(j2k_film, {}).get("over_classify_b1"), "<=", 1.0))
    targets.append(_target("service RSS after warm-up <= 1 GB (MB)", rss_mb, "<=", RSS_TARGET_MB))
    return {"ratios": ratios, "http": http, "decode": decode, "targets": targets}


# --- report -----------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The report: hardware, the per-candidate table, ratios, HTTP overhead, decode, memory, targets."""
    hw = result["hardware"]
    stats = result["candidates"]
    lines = [
        "# Interleaved comparison: ONNX Runtime, PyTorch eager, official architecture, HTTP, decoding",
        "",
        f"Measured {result['created']} with `{result['command']}`.",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"Hardware: {hw['cpu_model']}, {hw['cores']} cores ({hw['machine']}), intra-op threads "
        f"{hw['threads']} for ONNX Runtime and torch alike; Python {hw['python']}, onnxruntime "
        f"{hw['onnxruntime']}, torch {hw['torch']}. Load average at the start {hw['load_average']}, "
        f"at the end {result['load_average_end']}.",
        "",
        f"Bundle: `{result['bundle']['dir']}` ({result['bundle']['name']} {result['bundle']['version']}); "
        f"graphs as the service loads them: {result['bundle']['precisions']}; at precision stored: "
        f"{result['bundle']['stored_precisions']}. {result['rounds']} rounds, every candidate once per "
        "round, round-robin with the start rotating; one untimed warm-up round first.",
        "",
        "| candidate | batch | p50 ms | p95 ms | mean ms | p50 ms / image |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in stats.items():
        lines.append(
            f"| `{name}` | {row['batch']} | {row['p50']:.1f} | {row['p95']:.1f} | {row['mean']:.1f} | "
            f"{row['p50'] / row['batch']:.1f} |"
        )
    ratios = result["ratios"]
    lines += ["", "## Ratios (of medians)", "", "| ratio | " + " | ".join(
        f"batch {b}" for b in result["batches"]) + " |", "|---|" + "---|" * len(result["batches"])]
    for graph, row in ratios["eager_over_ort"].items():
        lines.append(f"| PyTorch eager / ONNX Runtime, `{graph}` | "
                     + " | ".join(f"{_fmt(v)}x" for v in row.values()) + " |")
    for graph, row in ratios["official_over_ort"].items():
        lines.append(f"| official architecture eager / ONNX Runtime `{graph}` | "
                     + " | ".join(f"{_fmt(v)}x" for v in row.values()) + " |")
    lines.append("| `image_model` at precision stored (fp16 compute) / auto (fp32 compute) | "
                 + " | ".join(f"{_fmt(v)}x" for v in ratios["stored_over_auto_full"].values()) + " |")
    lines += [
        "",
        f"`/classify` bare model (`{CLASSIFY_GRAPH}`, batch 1) / official architecture eager (batch 1): "
        f"**{_fmt(ratios['classify_vs_official_b1'], 3)}x**.",
        "",
        "## HTTP at concurrency 1",
        "",
        f"Payload: `{result['http_film']}.dcm`, one request at a time. HTTP overhead = HTTP p50 - bare "
        "graph p50 - in-process decode + preprocess p50 of the same film - the endpoint's postprocessing "
        "(median `timing_ms.post` the service reported), as a share of the bare graph. The service's own "
        "stage medians (`timing_ms`) are listed beside it.",
        "",
        "| endpoint | graph | HTTP p50 ms | bare graph p50 ms | decode p50 ms | post ms | HTTP / bare | "
        "overhead ms | overhead | service-reported queue / decode / infer / post ms | response KB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for endpoint, row in result["http"].items():
        stages = row.get("server_reported_ms") or {}
        reported = " / ".join(_fmt(stages.get(k), 1) for k in ("queue", "decode", "infer", "post"))
        lines.append(
            f"| /{endpoint} | `{row['graph']}` | {_fmt(row['http_ms'], 1)} | {_fmt(row['bare_ms'], 1)} | "
            f"{_fmt(row['decode_ms'], 1)} | {_fmt(row['post_ms'], 1)} | {_fmt(row['http_over_bare'])}x | "
            f"{_fmt(row['server_added_ms'], 1)} | {_fmt(row['server_overhead_pct'], 1)} % | {reported} | "
            f"{_fmt(stages.get('response_kb'), 1)} |"
        )
    lines += ["", "## Decode + preprocess of the real DICOMs", "",
              "| film | p50 ms | / `/classify` model time (batch 1) |", "|---|---|---|"]
    for film, row in result["decode"].items():
        lines.append(f"| {film} | {_fmt(row['ms'], 1)} | {_fmt(row['over_classify_b1'])}x |")
    memory = result.get("memory") or {}
    if memory:
        after, end = memory["after_warm_up"], memory["after_run"]
        lines += [
            "",
            "## Service memory",
            "",
            f"`medslip-serve` (default settings, this bundle), /proc/<pid>/status: VmRSS "
            f"**{after['rss_mb']:.0f} MB** after warm-up, {end['rss_mb']:.0f} MB after the run (peak VmHWM "
            f"{end['hwm_mb']:.0f} MB); decode process(es) {[round(v) for v in end['children_rss_mb']]} MB.",
        ]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for target in result["targets"]:
        met = {True: "met", False: "**not met**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['target']} | {_fmt(target['value'], 3)} | {met} |")
    return "\n".join(lines) + "\n"


# --- the run ----------------------------------------------------------------------------------------


def batch_inputs(images: list[np.ndarray], batches: Sequence[int]) -> dict[int, np.ndarray]:
    """(B, 3, S, S) float32 batches of real model inputs, cycling through `images`."""
    return {b: np.stack([images[i % len(images)] for i in range(b)]).astype(np.float32) for b in batches}


def eager_graph(checkpoint: Path, seg_checkpoint: Path | None, bundle: Bundle) -> ImageModelGraph:
    """The bundle's full graph as a PyTorch module, grounding method as the bundle records it."""
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    method = bundle.metadata["graphs"][FULL_GRAPH].get("finding_maps", {}).get("method")
    return ImageModelGraph(model, segmentation, method or default_grounding(segmentation is not None)).eval()


def load_films(data_dir: Path) -> dict[str, bytes]:
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
    """Build every candidate, interleave them, and return the result (without command and note)."""
    torch.set_num_threads(threads)
    bundle = load_bundle(bundle_dir)
    auto = OrtImageModel(bundle, device="cpu", intra_op_threads=threads, precision="auto")
    stored = OrtImageModel(bundle, device="cpu", intra_op_threads=threads, precision="stored")
    graphs = tuple(g for g in GRAPHS if g in auto.graphs)
    chest = [service_input(data, None, bundle.preprocessing, check_body_part=False)
             for name, data in films.items() if not name.startswith("wg04_RG2")]
    images = chest or [np.zeros((3, bundle.image_size, bundle.image_size), np.float32)]
    inputs = batch_inputs(images, batches)
    candidates = [
        *ort_candidates(auto, bundle, inputs, "ort", graphs),
        *ort_candidates(stored, bundle, inputs, "ort-stored", (FULL_GRAPH,)),
        *eager_candidates(full, bundle, inputs, graphs),
        *official_candidates(official, batches),
        *decode_candidates(films, bundle),
    ]
    hw = hardware(threads)
    memory: dict[str, Any] = {}
    timings: dict[str, list[dict[str, float]]] = {}
    process = None
    try:
        if http and http_film in films:
            process, url = spawn_server(bundle_dir, {}, threads, "cpu", ready_timeout_s=600.0)
            memory["after_warm_up"] = service_memory(process.pid)  # ready = every bucket warmed
            client = httpx.Client(base_url=url, timeout=300.0)
            candidates += http_candidates(client, films[http_film], timings)
        logger.info("interleaving %d candidates x %d rounds", len(candidates), rounds)
        samples, order = interleave(candidates, rounds)
        if process is not None:
            memory["after_run"] = service_memory(process.pid)
            memory["pid"] = process.pid
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
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
                   "precisions": dict(auto.precisions), "stored_precisions": dict(stored.precisions)},
        "rounds": rounds,
        "batches": list(batches),
        "http_film": http_film,
        "order_first_rounds": order[: 2 * len(candidates)],
        "candidates": table,
        "memory": memory,
        **analyse(p50, batches, graphs, rss_mb=rss, server_ms=server_ms, http_film=http_film),
    }


def build_parser() -> argparse.ArgumentParser:
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
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
