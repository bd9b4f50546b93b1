"""The graphs of an image-model bundle: their names, inputs and outputs, and which one serves a request.

One definition for the exporter (training/export/bundle.py), the verifier (app/contract/bundle_files.py) and
the service (app/contract/bundle.py, app/runtime.py); imports neither torch nor FastAPI.

Why several graphs: ONNX Runtime does not prune a graph by the outputs a caller fetches, so a single
graph makes `/classify` pay for the anatomy stream, the segmentation decoder and the heat maps it never
returns. Schema 2 bundles therefore carry:

- `image_model`: every output (grounding needs the segmentation prior of the finding maps, `/segment`
  needs the masks);
- `classify_model`: the trunk and the pathology decoder only -> `pathology_probs`, the same weights;
- `ground_model` (optional): every output but the masks. A bundle carries it when the finding maps'
  body prior has a segmentation head of its own (`finding_maps.prior_head: "own"`): `/ground` then
  skips the mask decoder, which costs about as much as the trunk.

Schema 1 bundles (one graph) still load: every request then runs `image_model`, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.contract.vocabulary import INPUT_NAMES, OUTPUT_NAMES

#: metadata.json `schema_version` this project writes, and those the service still loads.
SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)

FULL_GRAPH = "image_model"
CLASSIFY_GRAPH = "classify_model"
GROUND_GRAPH = "ground_model"
#: graph name -> file name in the bundle.
GRAPH_FILES: dict[str, str] = {
    FULL_GRAPH: "image_model.onnx", CLASSIFY_GRAPH: "classify_model.onnx", GROUND_GRAPH: "ground_model.onnx"
}

#: graph name -> (its inputs, its outputs), in signature order.
GRAPH_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    FULL_GRAPH: (INPUT_NAMES, OUTPUT_NAMES),
    CLASSIFY_GRAPH: (("image", "pathology_queries"), ("pathology_probs",)),
    GROUND_GRAPH: (INPUT_NAMES, tuple(name for name in OUTPUT_NAMES if name != "segmentation_logits")),
}
#: Graphs a bundle of each schema version must carry (others of GRAPH_SIGNATURES are optional).
REQUIRED_GRAPHS: dict[int, tuple[str, ...]] = {1: (FULL_GRAPH,), 2: (FULL_GRAPH, CLASSIFY_GRAPH)}

#: Outputs each endpoint reads (a batch runs the cheapest graph that has all its items' outputs).
ENDPOINT_OUTPUTS: dict[str, frozenset[str]] = {
    "classify": frozenset({"pathology_probs"}),
    "ground": frozenset({"pathology_probs", "pathology_maps", "anatomy_probs", "anatomy_maps"}),
    "segment": frozenset(OUTPUT_NAMES),
}
#: Cheapest first: the order in which a batch's graph is chosen.
GRAPH_COST_ORDER: tuple[str, ...] = (CLASSIFY_GRAPH, GROUND_GRAPH, FULL_GRAPH)


class GraphContractError(ValueError):
    """A bundle's `graphs` section does not match the contract of its schema version."""


def graph_problems(schema_version: object, graphs: Mapping[str, object]) -> list[str]:
    """Every way `graphs` (metadata.json) breaks the contract of `schema_version`; [] when it holds."""
    if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        return [
            f"unsupported bundle schema_version {schema_version!r} (this release reads "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}; re-export the bundle)"
        ]
    assert isinstance(schema_version, int)
    problems = [
        f"schema {schema_version} requires graph {name!r}"
        for name in REQUIRED_GRAPHS[schema_version]
        if name not in graphs
    ]
    for name, entry in graphs.items():
        if name not in GRAPH_SIGNATURES:
            problems.append(f"unknown graph {name!r}")
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("file"), str):
            problems.append(f"graph {name!r} has no file")
            continue
        inputs, outputs = GRAPH_SIGNATURES[name]
        listed = entry.get("outputs", {})
        if not isinstance(listed, Mapping) or tuple(listed) != outputs:
            problems.append(f"graph {name!r} must list outputs {list(outputs)}")
        listed_inputs = entry.get("inputs", {})
        if not isinstance(listed_inputs, Mapping) or tuple(listed_inputs) != inputs:
            problems.append(f"graph {name!r} must list inputs {list(inputs)}")
    return problems


def choose_graph(needed: Iterable[str], available: Iterable[str]) -> str:
    """The cheapest available graph whose outputs include every `needed` output."""
    wanted, have = frozenset(needed), set(available)
    for name in GRAPH_COST_ORDER:
        if name in have and wanted <= frozenset(GRAPH_SIGNATURES[name][1]):
            return name
    raise GraphContractError(f"no graph of the bundle computes {sorted(wanted)}")


#: Precisions a graph may be stored in. A graph entry's `variants` maps a precision other than its own
#: to another file of the same signature (e.g. a static int8 QDQ graph the service picks with
#: MEDSLIP_PRECISION=int8, shipped only when its measured drift is within the bounds in its entry).
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


def stored_precision(entry: Mapping[str, object]) -> str:
    """The precision a graph entry's own file is stored in (fp32 when the entry does not say)."""
    return str(entry.get("precision", "fp32"))


def _variant(entry: Mapping[str, object], precision: str) -> Mapping[str, object] | None:
    variants = entry.get("variants", {})
    variant = variants.get(precision) if isinstance(variants, Mapping) else None
    return variant if isinstance(variant, Mapping) and isinstance(variant.get("file"), str) else None


def has_precision(entry: Mapping[str, object], precision: str) -> bool:
    """True when the graph is stored in `precision` or has a variant in it."""
    return precision == stored_precision(entry) or _variant(entry, precision) is not None


def graph_file(entry: Mapping[str, object], precision: str | None) -> str:
    """The file of a graph entry at `precision` (None: the graph's own precision)."""
    if precision is None or precision == stored_precision(entry):
        return str(entry["file"])
    variant = _variant(entry, precision)
    if variant is None:
        raise GraphContractError(
            f"the bundle has no {precision} variant of this graph (it is {stored_precision(entry)})"
        )
    return str(variant["file"])
