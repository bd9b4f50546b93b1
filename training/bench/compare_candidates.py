"""The candidates `medslip-bench compare` times: each is one whole unit of work behind a no-argument
call, so the interleaved loop in `training/bench/compare.py` can time ONNX Runtime, PyTorch eager, the
official architecture, HTTP and decoding alike without knowing what any of them does.

Names follow `<group>:<what>:b<batch>` (`ort:image_model:b8`, `openvino:classify_model:b1`, `official:b1`,
`http:/classify`, `decode:<film>`): `training/bench/compare_report.py` looks the medians up by these names.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import torch
from torch import nn

from app.bench import service_input
from app.bench_floor import FLOOR_PATH
from app.contract.bundle import Bundle
from app.contract.graphs import CLASSIFY_GRAPH, GRAPH_COST_ORDER, GRAPH_SIGNATURES, choose_graph
from app.runtime import OrtImageModel
from app.runtime_openvino import OpenVinoImageModel
from training.bench.compare_report import ENDPOINTS, FLOOR_CANDIDATE, FLOOR_GROUP
from training.bench.interleave import Candidate
from training.export.graph import ImageModelGraph, graph_of
from training.model import MeDSLIP, create_model

#: The graphs timed (those a bundle has), in report order: the /classify graph, the /ground graph (when
#: the bundle has one), then the full one (/segment, and /ground without a graph of its own).
GRAPHS: tuple[str, ...] = GRAPH_COST_ORDER


def runner_candidates(
    runner: OrtImageModel | OpenVinoImageModel, bundle: Bundle, inputs: dict[int, np.ndarray], group: str,
    graphs: Sequence[str],
) -> list[Candidate]:
    """The bare runtime call (ONNX Runtime or OpenVINO) of each graph in `graphs` at each batch size of
    `inputs`."""
    out: list[Candidate] = []
    for batch, images in inputs.items():
        for graph in graphs:
            outputs = frozenset(GRAPH_SIGNATURES[graph][1])
            if choose_graph(outputs, runner.graphs) != graph:
                continue  # a graph the bundle lacks (schema 1: no classify graph)

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
    client: httpx.Client,
    payload: bytes,
    timings: dict[str, list[dict[str, float]]],
    group: str = "http",
    endpoints: tuple[str, ...] = ENDPOINTS,
    *,
    multipart: bool = False,
) -> list[Candidate]:
    """One request at a time to `/classify` and `/ground` of a running service (keep-alive client),
    named `<group>:/<endpoint>`; the film goes as the raw application/dicom body, or with `multipart`
    as field `file` of a multipart/form-data body (what browsers and `curl -F` send). The `timing_ms`
    each response reports (queue, decode, infer, post) and its size (`response_kb`) are appended to
    `timings[endpoint]` ("http" group) or `timings["<group>:/<endpoint>"]`."""
    out: list[Candidate] = []
    for endpoint in endpoints:
        key = endpoint if group == "http" else f"{group}:/{endpoint}"
        timings[key] = []

        def call(endpoint: str = endpoint, key: str = key) -> object:
            if multipart:
                files = {"file": ("film.dcm", payload, "application/dicom")}
                response = client.post(f"/{endpoint}", files=files)
            else:
                response = client.post(
                    f"/{endpoint}", content=payload, headers={"Content-Type": "application/dicom"}
                )
            if response.status_code != 200:
                raise RuntimeError(f"/{endpoint} answered {response.status_code}: {response.text[:200]}")
            stages = {k: float(v) for k, v in response.json()["timing_ms"].items()}
            timings[key].append({**stages, "response_kb": len(response.content) / 1000.0})
            return response

        out.append(Candidate(f"{group}:/{endpoint}", group, 1, call))
    return out


def floor_candidate(client: httpx.Client, payload: bytes) -> Candidate:
    """The same film, as the same raw body, to the HTTP floor app (`app.bench_floor`): the stack's own
    cost, timed in the same rounds as the service's requests."""
    def call() -> object:
        response = client.post(FLOOR_PATH, content=payload, headers={"Content-Type": "application/dicom"})
        if response.status_code != 200 or response.json()["received_bytes"] != len(payload):
            raise RuntimeError(f"{FLOOR_PATH} answered {response.status_code}: {response.text[:200]}")
        return response

    return Candidate(FLOOR_CANDIDATE, FLOOR_GROUP, 1, call)
