"""The image graph the service runs: MeDSLIP (+ optional segmentation) with the contract's exact I/O,
its ONNX export and the ONNX Runtime vs PyTorch parity check every export must pass."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.contract.graphs import CLASSIFY_GRAPH, FULL_GRAPH, GRAPH_SIGNATURES, GROUND_GRAPH
from app.contract.vocabulary import OUTPUT_NAMES
from training.export.onnx_tools import cpu_session, export_to_onnx, max_abs_diff, run_session
from training.model import SEGMENTATION_STRUCTURES, MeDSLIP, SegmentationModel
from training.model.grounding import PRIOR_STRUCTURES, GroundingMethod, grounding_maps

logger = logging.getLogger(__name__)

#: Outputs the contract's fp32 parity (<= 1e-4) is enforced on; segmentation logits are reported only,
#: because unbounded logits of a deep decoder legitimately drift more than probabilities do.
PARITY_OUTPUTS: tuple[str, ...] = ("pathology_probs", "pathology_maps", "anatomy_probs", "anatomy_maps")
FP32_TOLERANCE = 1e-4


def shares_trunk(model: MeDSLIP, segmentation: SegmentationModel | None) -> bool:
    """True when the segmentation head reads the MeDSLIP model's own trunk module. Decided eagerly, before
    any tracing: under `torch.export` the two attributes are no longer the same object, and a graph that
    asked there would compute the trunk twice."""
    return segmentation is not None and segmentation.trunk is model.res_features


def trunk_pass(model: MeDSLIP, segmentation: SegmentationModel | None, image: torch.Tensor,
               shared: bool) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """image (B, 3, S, S) -> (the segmentation head's trunk stages, stem..layer3; the layer3 grid for
    `model(..., grid=)`, or None when the model must run its own trunk). `shared` is `shares_trunk`'s
    answer, taken before tracing; a shared trunk runs once. Every caller that runs both heads goes
    through here."""
    if segmentation is None:
        return [], None
    if shared:
        stages = model.res_features.forward_stages(image)  # stem..layer3, computed once
        return stages, stages[-1]
    return segmentation.trunk.forward_stages(image), None


class ImageModelGraph(nn.Module):
    """Wraps a trained model so its forward is exactly `image_model.onnx` (docs/contracts.md).

    Without a segmentation model the graph still has `segmentation_logits`, with K = 0 structures, so
    the service never has to special-case the graph's signature (the metadata lists no structures).
    When the segmentation head reads the MeDSLIP trunk itself (joint pretraining), the trunk runs once.
    `pathology_maps` are the finding heat maps of `grounding` (`training.model.grounding`); their body
    prior comes from the segmentation model's prior head when it has one, else from its mask head.
    """

    def __init__(
        self,
        model: MeDSLIP,
        segmentation: SegmentationModel | None = None,
        grounding: GroundingMethod = "last",
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.segmentation = segmentation.eval() if segmentation is not None else None
        self.shared_trunk = shares_trunk(model, segmentation)  # before any tracing: see shares_trunk
        self.grounding: GroundingMethod = grounding
        self.prior_channels = [SEGMENTATION_STRUCTURES.index(name) for name in PRIOR_STRUCTURES]

    @property
    def num_structures(self) -> int:
        """K: channels of `segmentation_logits`."""
        if self.segmentation is None:
            return 0
        return int(self.segmentation.head.classifier.out_channels)

    def forward(
        self, image: torch.Tensor, pathology_queries: torch.Tensor, anatomy_queries: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """image (B, 3, S, S), queries (Qp, T) / (Qa, T) -> the five contract outputs."""
        return self.outputs(image, pathology_queries, anatomy_queries, masks=True)

    def outputs(
        self, image: torch.Tensor, pathology_queries: torch.Tensor, anatomy_queries: torch.Tensor, *,
        masks: bool,
    ) -> tuple[torch.Tensor, ...]:
        """The contract outputs in order; without `masks`, all but `segmentation_logits`, and a model
        with a prior head then runs only that head's decoder (what `ground_model` exports)."""
        size = (image.shape[-2], image.shape[-1])
        segmentation = self.segmentation
        stages, grid = trunk_pass(self.model, segmentation, image, self.shared_trunk)
        out = self.model(image, pathology_queries, anatomy_queries, grid=grid)
        if segmentation is None:
            segmentation_logits = image.new_zeros((image.shape[0], 0, *size))  # (B, 0, S, S)
            prior_logits = segmentation_logits
        elif masks:  # (B, K, S, S) each: the served masks and the finding maps' body prior
            segmentation_logits, prior_logits = segmentation.masks_and_prior(stages, size)
        else:
            prior_logits = segmentation.prior_logits(stages, size)  # (B, K, S, S)
        pathology_probs = out.pathology_logits.softmax(dim=-1)[..., 1]  # (B, Qp)
        anatomy_probs = out.anatomy_logits.softmax(dim=-1)[..., 1]  # (B, Qa)
        pathology_maps = grounding_maps(
            out.pathology_layer_maps, prior_logits, self.grounding, self.prior_channels
        )  # (B, Qp, G, G)
        found = (pathology_probs, pathology_maps, anatomy_probs, out.anatomy_maps)
        return (*found, segmentation_logits) if masks else found


class GroundGraph(nn.Module):
    """`ground_model.onnx`: every output of `ImageModelGraph` but the masks, from the same modules.

    Worth a graph of its own only when the body prior has its own head: the mask decoder it then skips
    costs about as much as the trunk (`has_ground_graph`)."""

    def __init__(self, full: ImageModelGraph) -> None:
        super().__init__()
        self.full = full

    def forward(
        self, image: torch.Tensor, pathology_queries: torch.Tensor, anatomy_queries: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """image (B, 3, S, S), queries (Qp, T) / (Qa, T) -> the four non-mask contract outputs."""
        return self.full.outputs(image, pathology_queries, anatomy_queries, masks=False)


def has_ground_graph(full: ImageModelGraph) -> bool:
    """True when a bundle of `full` carries `ground_model`: its maps' prior comes from a prior head."""
    return full.segmentation is not None and full.segmentation.prior_head is not None


class ClassifyGraph(nn.Module):
    """`classify_model.onnx`: the trunk and the pathology decoder only -> `pathology_probs`.

    The same modules as `ImageModelGraph` (so the same weights and the same probabilities), without the
    anatomy stream, the segmentation decoder and the heat maps that `/classify` never returns."""

    def __init__(self, model: MeDSLIP) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor, pathology_queries: torch.Tensor) -> torch.Tensor:
        """image (B, 3, S, S), queries (Qp, T) -> pathology_probs (B, Qp)."""
        model = self.model
        pathology_tokens, _, _, _ = model.encode_image(image, None)  # (B, N, D)
        decoder = model.decoder_pathology
        features, _ = model._decode(decoder, pathology_queries, pathology_tokens)  # (B, Qp, D)
        logits = model.classifier_pathology(model.dropout_feas_pathology(features))  # (B, Qp, 2)
        return logits.softmax(dim=-1)[..., 1]


def graph_of(name: str, full: ImageModelGraph) -> nn.Module:
    """The module exported as graph `name` of the contract, built on the full graph's modules."""
    if name == FULL_GRAPH:
        return full
    if name == CLASSIFY_GRAPH:
        return ClassifyGraph(full.model)
    if name == GROUND_GRAPH:
        return GroundGraph(full)
    raise ValueError(f"unknown graph {name!r}")


def export_graph(name: str, module: nn.Module, model: MeDSLIP, path: Path) -> Path:
    """Export graph `name` with a dynamic batch axis and dynamic query counts; the image size stays fixed
    (the bundle's preprocessing promises it)."""
    config = model.config
    inputs, outputs = GRAPH_SIGNATURES[name]
    dims = {"image": {0: torch.export.Dim("batch")}, "pathology_queries": {0: torch.export.Dim("Qp")},
            "anatomy_queries": {0: torch.export.Dim("Qa")}}
    generator = torch.Generator().manual_seed(0)
    examples = {
        "image": torch.randn(2, 3, config.image_size, config.image_size, generator=generator),
        # Clones: passing the buffers themselves makes torch.export treat the query counts as constants.
        "pathology_queries": model.pathology_book.detach().clone(),  # (75, T)
        "anatomy_queries": model.anatomy_book.detach().clone(),  # (51, T)
    }
    return export_to_onnx(
        module,
        tuple(examples[n] for n in inputs),
        path,
        input_names=list(inputs),
        output_names=list(outputs),
        dynamic_shapes={n: dims[n] for n in inputs},
    )


def export_image_graph(graph: ImageModelGraph, path: Path) -> Path:
    """`image_model.onnx`: every output of the contract."""
    return export_graph(FULL_GRAPH, graph, graph.model, path)


def _random_queries(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    queries = torch.randn(count, dim, generator=generator)  # (Q, T)
    return torch.nn.functional.normalize(queries, dim=-1)  # like sentence embeddings


def measure_parity(
    graph: ImageModelGraph,
    onnx_path: Path,
    batches: Iterable[int] = (1, 3),
    query_counts: Iterable[tuple[int, int] | None] = (None, (7, 3)),
    *,
    seed: int = 0,
    name: str = FULL_GRAPH,
) -> dict[str, float]:
    """Max |ORT - torch| per output of graph `name` over every (batch, query count) case; `None` = the
    built-in books. Different batch sizes and query counts from the export example prove the dynamic
    axes work. The torch reference of every graph is the full graph's forward, so a partial graph is also
    checked against what `image_model` computes for the same outputs."""
    config = graph.model.config
    inputs, outputs = GRAPH_SIGNATURES[name]
    session = cpu_session(onnx_path)
    generator = torch.Generator().manual_seed(seed)
    worst = dict.fromkeys(outputs, 0.0)
    for batch in batches:
        for counts in query_counts:
            image = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator)
            if counts is None:
                pathology, anatomy = graph.model.pathology_book, graph.model.anatomy_book
            else:
                pathology = _random_queries(counts[0], config.text_dim, generator)
                anatomy = _random_queries(counts[1], config.text_dim, generator)
            with torch.no_grad():
                expected = dict(zip(OUTPUT_NAMES, graph(image, pathology, anatomy), strict=True))
            feeds = {"image": image.numpy(), "pathology_queries": pathology.numpy().astype(np.float32),
                     "anatomy_queries": anatomy.numpy().astype(np.float32)}
            actual = run_session(session, {key: feeds[key] for key in inputs})
            for output in outputs:
                worst[output] = max(worst[output], max_abs_diff(actual[output], expected[output].numpy()))
    logger.info("%s: ORT vs torch max abs diff: %s", name, {k: f"{v:.2e}" for k, v in worst.items()})
    return worst


def require_fp32_parity(diffs: dict[str, float]) -> None:
    """Refuse an fp32 graph that does not reproduce the torch model within FP32_TOLERANCE."""
    failing = {name: diffs[name] for name in PARITY_OUTPUTS if diffs.get(name, 0.0) > FP32_TOLERANCE}
    if failing:
        raise RuntimeError(f"ONNX graph differs from torch beyond {FP32_TOLERANCE}: {failing}")
