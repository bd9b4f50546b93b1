"""`medslip-bench memory`: resident memory and throughput of `medslip-serve` under setting variants.

Why a sweep of whole servers: what a setting costs in memory (the largest warmed batch, the runtime) shows
only in the served process, after its warm-up and after real traffic, and what it buys shows in the films
it serves per second under load. Each variant is a set of `MEDSLIP_*` variables; the variants are started
one at a time, in turn, for `--rounds` rounds (so a drifting host shifts them alike), each on a free
loopback port, and each is measured the same way:

- VmRSS of the served process once it is ready (every bucket warmed, the warm-up's memory trimmed);
- `/classify` latency at concurrency 1 (one film, `--latency-requests` requests);
- a closed loop of `--requests` requests at `--concurrency`, cycling through `--endpoints` (default: four
  `/classify`, one `/ground`, one `/segment`: the mixed load that grows the heap most);
- VmRSS and VmHWM after that load.

Memory is in MB (10^6 bytes), as in `medslip-bench compare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.bench_decode import hardware
from app.bench_load import drive_level, spawn_server
from app.contract.locations import shared_data_dir
from app.memory import service_memory

logger = logging.getLogger(__name__)

#: The film every request sends: the 1024 x 1024 uncompressed DICOM of ../shared/data/dicom.
DEFAULT_FILM = Path("dicom") / "nih_gcp_DX_nofinding.dcm"
MIXED = ["/classify"] * 4 + ["/ground?findings=effusion", "/segment?anatomy=heart"]


def measure(
    model_dir: Path, env: dict[str, str], film: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    """One variant's server, started, measured and stopped."""
    process, url = spawn_server(model_dir, env, args.threads, ready_timeout_s=args.ready_timeout_s)
    dicom = [(film, "application/dicom")]
    try:
        ready = service_memory(process.pid)
        first = httpx.post(f"{url}/classify", content=film, headers={"Content-Type": "application/dicom"},
                           timeout=120.0)
        first.raise_for_status()
        latency = asyncio.run(drive_level(url, "/classify", dicom, 1, args.latency_requests))
        load = asyncio.run(drive_level(url, args.endpoints, dicom, args.concurrency, args.requests))
        after = service_memory(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "rss_ready_mb": ready["rss_mb"],
        "rss_after_load_mb": after["rss_mb"],
        "hwm_mb": after["hwm_mb"],
        "classify_c1_p50_ms": (latency["latency_ms"] or {}).get("p50"),
        "load_films_per_s": load["throughput_rps"],
        "load_errors": load["errors"],
        "provider": first.json()["model"]["provider"],
    }


def _span(values: list[float], digits: int = 0) -> str:
    low, high = min(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{low:.{digits}f}"
    return f"{low:.{digits}f}-{high:.{digits}f}"


def report(result: dict[str, Any]) -> str:
    """Markdown: one row per variant, each cell the range over the rounds."""
    lines = [
        "# Service memory and throughput by settings",
        "",
        f"{result['hardware']}; {result['threads']} inference thread(s); {result['rounds']} round(s), the "
        f"variants in turn; load: {result['requests']} requests at concurrency {result['concurrency']} over "
        f"{', '.join(f'`{e}`' for e in result['endpoints'])}. MB = 10^6 bytes.",
        "",
        "| variant | settings | provider | VmRSS ready (MB) | VmRSS after load (MB) | VmHWM (MB) "
        "| /classify c=1 p50 (ms) | films/s under load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in result["variants"].items():
        runs = variant["runs"]
        settings = ", ".join(f"`{k}={v}`" for k, v in variant["env"].items()) or "defaults"
        cells = [
            _span([r["rss_ready_mb"] for r in runs]),
            _span([r["rss_after_load_mb"] for r in runs]),
            _span([r["hwm_mb"] for r in runs]),
            _span([r["classify_c1_p50_ms"] or 0.0 for r in runs], 1),
            _span([r["load_films_per_s"] for r in runs], 1),
        ]
        providers = ", ".join(sorted({r["provider"] for r in runs}))
        lines.append(f"| {name} | {settings} | {providers} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medslip-bench memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="bundle every variant serves")
    parser.add_argument("--variants", required=True,
                        help='JSON object: variant name -> {"MEDSLIP_...": "value"} ({} = defaults)')
    parser.add_argument("--data-dir", type=Path, default=None, help="../shared/data (MEDSLIP_SHARED_DATA)")
    parser.add_argument("--film", type=Path, default=None, help=f"DICOM film (default: DATA/{DEFAULT_FILM})")
    parser.add_argument("--threads", type=int, default=2, help="inference threads of every server")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-requests", type=int, default=30)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--endpoints", nargs="+", default=MIXED, help="cycled through by the load")
    parser.add_argument("--ready-timeout-s", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None, help="writes DIR/memory.json and DIR/memory.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    variants: dict[str, dict[str, str]] = json.loads(args.variants)
    film = (args.film or (args.data_dir or shared_data_dir()) / DEFAULT_FILM).read_bytes()
    result: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "model_dir": str(args.model_dir),
        "threads": args.threads,
        "rounds": args.rounds,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "endpoints": args.endpoints,
        "variants": {name: {"env": env, "runs": []} for name, env in variants.items()},
    }
    for round_index in range(args.rounds):
        for name, env in variants.items():
            logger.info("round %d: %s", round_index + 1, name)
            result["variants"][name]["runs"].append(measure(args.model_dir, env, film, args))
    text = report(result)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "memory.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        (args.out / "memory.md").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0
