"""`medslip-bench ops`: where ONNX Runtime spends each graph's time, by operator type.

Why: the interleaved comparison (`medslip-bench compare`) says how fast each graph is against PyTorch
eager; this says what that time is made of. It builds every session as the service builds it (same
options, same precision, fp16 weights upcast for fp32 compute on the CPU), runs each graph on a
synthetic film with ONNX Runtime's own profiler on, and sums the kernel time per operator type. A
speed target can then be held against the share no graph rewrite removes: the convolution and matrix
kernels, which PyTorch eager runs as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.bench_decode import hardware
from app.blas import limit_blas_threads
from app.contract.bundle import Bundle, load_bundle, resolve_default_bundle
from app.contract.graphs import GRAPH_SIGNATURES
from app.contract.locations import MODEL_STORE
from app.runtime import graph_source, select_providers, session_options

#: Suffix ONNX Runtime gives a node's kernel event in its profile (other events: fences, session).
KERNEL_SUFFIX = "_kernel_time"


def timed_events(events: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    """The events inside the last `runs` `model_run` spans of a profile: the first runs of a session
    allocate and tune, so a profile that starts with warm-up runs is cut to the runs after them."""
    spans = [(int(e["ts"]), int(e["ts"]) + int(e["dur"])) for e in events
             if e.get("cat") == "Session" and e.get("name") == "model_run"][-runs:]
    if len(spans) < runs:
        raise ValueError(f"the profile holds {len(spans)} runs, fewer than the {runs} asked for")
    return [e for e in events if e.get("cat") == "Node"
            and any(start <= int(e.get("ts", -1)) <= end for start, end in spans)]


def operator_times(events: Iterable[dict[str, Any]], runs: int) -> dict[str, float]:
    """Milliseconds per run spent in each operator type's kernels, largest first, from the events of
    an ONNX Runtime profile (`SessionOptions.enable_profiling`) that cover `runs` runs."""
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith(KERNEL_SUFFIX):
            continue
        totals[str(event.get("args", {}).get("op_name", "?"))] += float(event.get("dur", 0)) / 1000.0
    per_run = {op: total / runs for op, total in totals.items()}
    return dict(sorted(per_run.items(), key=lambda item: -item[1]))


def _feeds(bundle: Bundle, name: str, batch: int, seed: int) -> dict[str, np.ndarray]:
    """A synthetic batch of films in the bundle's input shape and the bundle's own query books, for the
    inputs the contract says graph `name` reads (kernel times do not depend on the pixel values)."""
    rng = np.random.default_rng(seed)
    spec = bundle.preprocessing
    given = {"image": rng.random((batch, spec.channels, spec.image_size, spec.image_size), dtype=np.float32),
             "pathology_queries": bundle.pathology_queries, "anatomy_queries": bundle.anatomy_queries}
    return {key: given[key] for key in GRAPH_SIGNATURES[name][0]}


def profile_graph(bundle: Bundle, name: str, *, threads: int, batch: int, runs: int, warmup: int,
                  precision: str = "fp32", seed: int = 0) -> dict[str, Any]:
    """Per-operator kernel time of graph `name`, averaged over `runs` profiled runs that follow
    `warmup` runs of the same session (not counted: allocation and first-run tuning)."""
    path, source, computed = graph_source(bundle, name, precision)
    providers = select_providers("cpu", ort.get_available_providers())
    with tempfile.TemporaryDirectory() as scratch:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / name)
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
        feeds = _feeds(bundle, name, batch, seed)
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    ops = operator_times(timed_events(events, runs), runs)
    total = sum(ops.values())
    return {"graph": name, "file": path.name, "precision": computed, "batch": batch, "runs": runs,
            "kernel_ms_per_run": round(total, 3),
            "operators": [{"op": op, "ms": round(ms, 3), "share": round(ms / total, 4) if total else 0.0}
                          for op, ms in ops.items()]}


def render(report: dict[str, Any], top: int = 8) -> str:
    """Markdown: one table per graph, its `top` operator types and the rest together."""
    lines = ["# ONNX Runtime kernel time by operator type", "",
             f"Measured {report['measured']} with `{report['command']}`.", "",
             f"Hardware: {report['hardware']}; intra-op threads {report['threads']}. "
             f"Bundle `{report['bundle']}`; synthetic films; "
             f"{report['runs']} profiled runs per graph after {report['warmup']} warm-up runs.", ""]
    for graph in report["graphs"]:
        lines += [f"## `{graph['graph']}` ({graph['precision']}), batch {graph['batch']}: "
                  f"{graph['kernel_ms_per_run']:.1f} ms of kernels per run", "",
                  "| operator | ms per run | share |", "|---|---|---|"]
        shown, rest = graph["operators"][:top], graph["operators"][top:]
        lines += [f"| {o['op']} | {o['ms']:.2f} | {100 * o['share']:.1f} % |" for o in shown]
        if rest:
            lines.append(f"| {len(rest)} others | {sum(o['ms'] for o in rest):.2f} | "
                         f"{100 * sum(o['share'] for o in rest):.1f} % |")
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medslip-bench ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="bundle (default: the one the service serves from model_store)")
    parser.add_argument("--graphs", nargs="+", default=None, help="graph names (default: every graph)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per session")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=10, help="profiled runs per graph and batch")
    parser.add_argument("--warmup", type=int, default=3, help="runs before them, not counted")
    parser.add_argument("--out", type=Path, default=None, help="folder for ops.json and ops.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    args = build_parser().parse_args(given)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    limit_blas_threads(1)
    bundle = load_bundle(args.model_dir or resolve_default_bundle(MODEL_STORE))
    graphs = [profile_graph(bundle, name, threads=args.threads, batch=batch, runs=args.runs,
                            warmup=args.warmup)
              for name in (args.graphs or bundle.graph_names) for batch in args.batches]
    report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": "medslip-bench ops " + shlex.join(given), "hardware": hardware(),
              "threads": args.threads, "bundle": f"{bundle.name} {bundle.version}", "runs": args.runs,
              "warmup": args.warmup, "graphs": graphs}
    text = render(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ops.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        (args.out / "ops.md").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0
