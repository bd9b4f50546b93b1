"""The report of `medslip-bench compare`: ratios of the candidates' medians, the targets met or not, and
the markdown rendering of the result JSON. Pure arithmetic and text (no torch, no ONNX Runtime), so the
targets can be checked and the report re-rendered from a stored `compare.json` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.contract.graphs import CLASSIFY_GRAPH, ENDPOINT_OUTPUTS, FULL_GRAPH, GraphContractError, choose_graph

#: The endpoints requested over HTTP; the report has one overhead row and one target per endpoint.
ENDPOINTS: tuple[str, ...] = ("classify", "ground")
#: The film the decode target is about: 2140 x 1760 JPEG 2000 lossless.
J2K_FILM = "wg04_RG2_J2KR"
#: The film sent over HTTP (a 1024 x 1024 uncompressed chest DX, a typical upload).
HTTP_FILM = "nih_gcp_DX_nofinding"
#: The second server's candidates: every upload decoded in the decode process (no inline routing).
ROUTING_GROUP = "http-pool"
ROUTING_ENDPOINT = "classify"
#: The default server again, the film sent as a multipart/form-data upload instead of a raw body.
MULTIPART_GROUP = "http-multipart"
#: The same service on OpenVINO (MEDSLIP_RUNTIME=openvino), where the openvino package is installed.
OPENVINO_HTTP_GROUP = "http-openvino"
#: The HTTP stack alone (`app.bench_floor`): the same client and film, no service behind the route.
FLOOR_GROUP = "http-floor"
FLOOR_CANDIDATE = f"{FLOOR_GROUP}:/floor"
RSS_TARGET_MB = 1000.0  # 1 GB
#: The header of the HTTP tables (default server, OpenVINO server).
HTTP_HEADER = (
    "| endpoint | graph | HTTP p50 ms | bare graph p50 ms | decode p50 ms | post ms | HTTP / bare | "
    "overhead ms | overhead | service-reported queue / decode / infer / post ms | response KB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """`numerator / denominator`, None where either was not measured (a ratio of a missing candidate
    must read "n/a", not fail the run)."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _target(name: str, value: float | None, op: str, bound: float) -> dict[str, Any]:
    """One target row; `met` None where `value` was not measured, so "not met" means measured."""
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
    decode_ms = get(f"decode:{http_film}")
    http = {endpoint: _http_row(p50, endpoint, graphs, group="http", bare_group="ort", decode_ms=decode_ms,
                                server_ms=server_ms or {}) for endpoint in ENDPOINTS}
    ratios["ort_over_openvino"] = {
        graph: {f"b{b}": _ratio(get(f"ort:{graph}:b{b}"), get(f"openvino:{graph}:b{b}")) for b in batches}
        for graph in graphs
    }
    ratios["eager_over_openvino"] = {
        graph: {f"b{b}": _ratio(get(f"eager:{graph}:b{b}"), get(f"openvino:{graph}:b{b}")) for b in batches}
        for graph in graphs
    }
    http_openvino = {
        endpoint: _http_row(p50, endpoint, graphs, group=OPENVINO_HTTP_GROUP, bare_group="openvino",
                            decode_ms=decode_ms, server_ms=server_ms or {})
        for endpoint in ENDPOINTS
    }
    routed_key = f"{ROUTING_GROUP}:/{ROUTING_ENDPOINT}"
    pooled = get(routed_key)
    routing = {
        "endpoint": ROUTING_ENDPOINT,
        "inline_http_ms": get(f"http:/{ROUTING_ENDPOINT}"),
        "pool_http_ms": pooled,
        "pool_over_inline": _ratio(pooled, get(f"http:/{ROUTING_ENDPOINT}")),
        "inline_decode_reported_ms": (server_ms or {}).get(ROUTING_ENDPOINT, {}).get("decode"),
        "pool_decode_reported_ms": (server_ms or {}).get(routed_key, {}).get("decode"),
    }
    multipart = get(f"{MULTIPART_GROUP}:/{ROUTING_ENDPOINT}")
    upload = {
        "endpoint": ROUTING_ENDPOINT,
        "raw_http_ms": get(f"http:/{ROUTING_ENDPOINT}"),
        "multipart_http_ms": multipart,
        "multipart_over_raw": _ratio(multipart, get(f"http:/{ROUTING_ENDPOINT}")),
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
    return {"ratios": ratios, "http": http, "http_openvino": http_openvino, "routing": routing,
            "upload": upload, "decode": decode, "http_floor": _floor(get(FLOOR_CANDIDATE), http["classify"]),
            "targets": targets}


def _floor(floor_ms: float | None, classify: dict[str, Any]) -> dict[str, Any]:
    """The stack's floor against `/classify`'s overhead: how much of the overhead the HTTP framework and
    the client take with no service at all, and what the service adds beyond them."""
    bare, added = classify["bare_ms"], classify["server_added_ms"]
    return {
        "floor_ms": floor_ms,
        "floor_pct_of_classify_bare": None if floor_ms is None or not bare else floor_ms / bare * 100.0,
        "service_beyond_floor_ms": None if floor_ms is None or added is None else added - floor_ms,
    }


def _http_row(p50: dict[str, float], endpoint: str, graphs: Sequence[str], *, group: str, bare_group: str,
              decode_ms: float | None, server_ms: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One endpoint's HTTP overhead: requests of `group` against the bare graph of `bare_group`."""
    try:
        graph: str | None = choose_graph(ENDPOINT_OUTPUTS[endpoint], graphs)
    except GraphContractError:
        graph = None
    total, bare = p50.get(f"{group}:/{endpoint}"), p50.get(f"{bare_group}:{graph}:b1")
    stages = server_ms.get(endpoint if group == "http" else f"{group}:/{endpoint}", {})
    post = stages.get("post")
    added = None
    if total is not None and bare is not None and decode_ms is not None and post is not None:
        added = total - bare - decode_ms - post
    return {
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


def _fmt(value: float | None, digits: int = 2) -> str:
    """A figure for the tables, "n/a" where it was not measured."""
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
        f"{hw['threads']} for ONNX Runtime, torch and JPEG 2000 decoding alike; Python {hw['python']}, "
        f"onnxruntime {hw['onnxruntime']}, torch {hw['torch']}. Load average at the start "
        f"{hw['load_average']}, at the end {result['load_average_end']}.",
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
        *HTTP_HEADER,
    ]
    lines += [_http_line(endpoint, row) for endpoint, row in result["http"].items()]
    floor = result.get("http_floor") or {}
    if floor.get("floor_ms") is not None:
        lines += [
            "",
            f"HTTP stack floor (`app.bench_floor`: the same framework, client and film, a route that only "
            f"reads the body and answers): **{_fmt(floor['floor_ms'], 2)} ms**, "
            f"{_fmt(floor['floor_pct_of_classify_bare'], 1)} % of the bare `/classify` graph; the service "
            f"adds {_fmt(floor['service_beyond_floor_ms'], 2)} ms beyond it.",
        ]
    lines += _openvino_lines(result)
    routing = result.get("routing") or {}
    if routing.get("pool_http_ms") is not None:
        lines += [
            "",
            "## Decode routing",
            "",
            f"`/{routing['endpoint']}` of the same film with the default routing (uncompressed DICOM "
            "decoded in the worker thread) against a second server that sends every upload to the decode "
            "process (`MEDSLIP_DECODE_INLINE=false`), interleaved in the same rounds.",
            "",
            "| routing | HTTP p50 ms | service-reported decode ms |",
            "|---|---|---|",
            f"| worker thread (default) | {_fmt(routing['inline_http_ms'], 1)} | "
            f"{_fmt(routing['inline_decode_reported_ms'], 1)} |",
            f"| decode process | {_fmt(routing['pool_http_ms'], 1)} | "
            f"{_fmt(routing['pool_decode_reported_ms'], 1)} |",
            "",
            f"Decode process / worker thread, HTTP p50: **{_fmt(routing['pool_over_inline'])}x**.",
        ]
    upload = result.get("upload") or {}
    if upload.get("multipart_http_ms") is not None:
        lines += [
            "",
            "## Upload encoding",
            "",
            f"`/{upload['endpoint']}` of the same film to the default server, as a raw `application/dicom` "
            "body and as field `file` of a multipart/form-data body, interleaved in the same rounds.",
            "",
            "| upload | HTTP p50 ms |",
            "|---|---|",
            f"| raw body | {_fmt(upload['raw_http_ms'], 1)} |",
            f"| multipart/form-data | {_fmt(upload['multipart_http_ms'], 1)} |",
            "",
            f"Multipart / raw, HTTP p50: **{_fmt(upload['multipart_over_raw'])}x**.",
        ]
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


def _http_line(endpoint: str, row: dict[str, Any]) -> str:
    stages = row.get("server_reported_ms") or {}
    reported = " / ".join(_fmt(stages.get(k), 1) for k in ("queue", "decode", "infer", "post"))
    return (f"| /{endpoint} | `{row['graph']}` | {_fmt(row['http_ms'], 1)} | {_fmt(row['bare_ms'], 1)} | "
            f"{_fmt(row['decode_ms'], 1)} | {_fmt(row['post_ms'], 1)} | {_fmt(row['http_over_bare'])}x | "
            f"{_fmt(row['server_added_ms'], 1)} | {_fmt(row['server_overhead_pct'], 1)} % | {reported} | "
            f"{_fmt(stages.get('response_kb'), 1)} |")


def _openvino_lines(result: dict[str, Any]) -> list[str]:
    """The OpenVINO section: bare graphs against ONNX Runtime and eager, and its server over HTTP."""
    provider = result["bundle"].get("openvino")
    if not provider:
        return []
    ratios, batches = result["ratios"], result["batches"]
    lines = ["", f"## OpenVINO ({provider}, `MEDSLIP_RUNTIME=openvino`)", "",
             "| ratio | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for key, label in (("ort_over_openvino", "ONNX Runtime (fp32 compute) / OpenVINO"),
                       ("eager_over_openvino", "PyTorch eager / OpenVINO")):
        for graph, row in ratios[key].items():
            lines.append(f"| {label}, `{graph}` | " + " | ".join(f"{_fmt(v)}x" for v in row.values()) + " |")
    rows = [_http_line(endpoint, row) for endpoint, row in (result.get("http_openvino") or {}).items()
            if row["http_ms"] is not None]
    if rows:
        lines += ["", "The same service on OpenVINO over HTTP (overhead as above, against OpenVINO's bare "
                  "graph):", "", *HTTP_HEADER, *rows]
    memory = (result.get("memory") or {}).get("openvino_after_warm_up")
    if memory:
        lines += ["", f"Its VmRSS after warm-up: **{memory['rss_mb']:.0f} MB**."]
    return lines
