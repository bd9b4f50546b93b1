"""The trunk grid and body prior of an exported bundle's graph, for screening finding maps on the model
users get (`grounding_evidence --bundle`).

Why a bundle and not a checkpoint: a shipped bundle is the one model of a recipe that is always at hand
(training folders are not kept), and screening a new read-out on its own graph compares it with the maps
that graph serves, film for film. ONNX Runtime computes the tensors the served maps are made of anyway;
this only asks it to return two of them as well:

* the layer3 grid (B, C, G, G): the 4-D tensor the token reshape reads (the decoders' input);
* the body prior (B, 1, G, G): the last max-pool of the graph, the one-cell dilation that
  `training.model.grounding.body_prior` ends with.

Both are found by the graph's structure, and a graph where either is not exactly one tensor is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from app.contract.bundle import Bundle, load_bundle
from app.graph_precision import fp32_model

GRID = "evidence_grid"
PRIOR = "evidence_prior"
#: The graph that computes the served finding maps beside the trunk (docs/contracts.md).
GROUND_GRAPH = "ground_model.onnx"


class FeatureGraphError(ValueError):
    """The graph does not have exactly one tensor of a kind the features need."""


def _one(found: list[str], what: str) -> str:
    if len(found) != 1:
        raise FeatureGraphError(f"expected one {what} in the graph, found {len(found)}")
    return found[0]


def feature_tensors(graph: onnx.GraphProto) -> tuple[str, str]:
    """(grid, prior) tensor names of a MeDSLIP image graph, found by structure."""
    producers = {output: node for node in graph.node for output in node.output}
    grid = _one(sorted({name for node in graph.node if node.op_type == "Reshape"
                        for name in node.input[:1]
                        if name in producers and producers[name].op_type == "Relu"}), "trunk grid")
    prior = _one([node.output[0] for node in graph.node if node.op_type == "MaxPool"
                  and node.input[0] in producers and producers[node.input[0]].op_type == "AveragePool"],
                 "body prior")
    return grid, prior


def feature_graph(path: Path) -> bytes:
    """The fp32 graph at `path` with the grid and the prior as two more outputs (`GRID`, `PRIOR`)."""
    model = fp32_model(path)
    grid, prior = feature_tensors(model.graph)
    for source, name in ((grid, GRID), (prior, PRIOR)):
        model.graph.node.append(onnx.helper.make_node("Identity", [source], [name]))
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


class BundleFeatures:
    """image (1, 3, S, S) -> (grid (1, C, G, G), prior (1, 1, G, G), served maps (1, Qp, G, G))."""

    def __init__(self, bundle_dir: Path, threads: int = 1) -> None:
        self.bundle: Bundle = load_bundle(bundle_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(feature_graph(bundle_dir / GROUND_GRAPH), options,
                                            providers=["CPUExecutionProvider"])
        self.book = torch.from_numpy(self.bundle.pathology_queries.astype(np.float32))  # (Qp, T)

    def __call__(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feeds = {"image": image.astype(np.float32),
                 "pathology_queries": self.bundle.pathology_queries.astype(np.float32),
                 "anatomy_queries": self.bundle.anatomy_queries.astype(np.float32)}
        grid, prior, maps = self.session.run([GRID, PRIOR, "pathology_maps"], feeds)
        return torch.from_numpy(grid), torch.from_numpy(prior), torch.from_numpy(maps)
