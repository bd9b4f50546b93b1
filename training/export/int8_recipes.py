"""Static int8 quantisation recipes: what is quantised, which nodes stay float, how it is calibrated.

A recipe (`QuantRecipe`) names the op types quantised, the activation calibration (min/max, percentile
or entropy on REAL preprocessed films) and which nodes are kept float: the softmax-attention products
(both inputs are activations; their output is the heat map), the last matmul/conv before each output,
the stem (nodes reading a graph input). These choices are kept apart from the measurement
(`training.export.int8_measure`) and the CLI (`training.export.int8_static`) so that a recipe can be added or
inspected without touching how variants are judged. `quantize_graph` applies one to an fp32 graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from training.export.onnx_tools import check_onnx

#: Films per calibration, evaluation and timing batch.
BATCH = 8
#: One run's inputs by graph input name: the image batch and the query books.
Feeds = dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class QuantRecipe:
    """What is quantised and how activations are calibrated."""

    name: str
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
    calibration: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999
    keep_attention_float: bool = True  # MatMuls of two activations (softmax attention, the heat maps)
    keep_heads_float: bool = True  # the last Conv/MatMul/Gemm before each graph output
    keep_stem_float: bool = False  # the nodes that read a graph input (the trunk's first convolution)
    activations: str = "int8"  # int8 | uint8

    def describe(self) -> str:
        percentile = self.calibration == "percentile"
        calibration = f"percentile {self.percentile}" if percentile else self.calibration
        kept = [label for flag, label in ((self.keep_attention_float, "attention products"),
                                          (self.keep_heads_float, "output heads"),
                                          (self.keep_stem_float, "stem")) if flag]
        return (f"static QDQ, per-channel int8 weights, {self.activations} activations ({calibration} on "
                f"real films); quantised ops {'/'.join(self.op_types)}"
                + (f"; float: {', '.join(kept)}" if kept else ""))


RECIPES: dict[str, QuantRecipe] = {
    recipe.name: recipe
    for recipe in (
        QuantRecipe("all-minmax", keep_attention_float=False, keep_heads_float=False),
        QuantRecipe("no-attention-minmax"),
        QuantRecipe("no-attention-percentile", calibration="percentile"),
        QuantRecipe("no-attention-entropy", calibration="entropy"),
        QuantRecipe("conv-minmax", op_types=("Conv",)),
        QuantRecipe("conv-percentile", op_types=("Conv",), calibration="percentile"),
        QuantRecipe("conv-percentile-u8", op_types=("Conv",), calibration="percentile", activations="uint8"),
        QuantRecipe("conv-minmax-stem-float", op_types=("Conv",), keep_stem_float=True),
        QuantRecipe("conv-minmax-stem-float-u8", op_types=("Conv",), keep_stem_float=True,
                    activations="uint8"),
        QuantRecipe("no-attention-minmax-stem-float", keep_stem_float=True),
    )
}
_CALIBRATION = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy}
_QTYPE = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds preprocessed films `BATCH` at a time with the bundle's query books, only the graph's inputs."""

    def __init__(self, images: Sequence[NDArray[np.float32]], books: Mapping[str, NDArray[np.float32]],
                 inputs: Sequence[str]) -> None:
        self._feeds = iter(list(feeds_for(images, books, inputs)))

    def get_next(self) -> Feeds | None:
        return next(self._feeds, None)


def feeds_for(images: Sequence[NDArray[np.float32]], books: Mapping[str, NDArray[np.float32]],
              inputs: Sequence[str], batch: int = BATCH) -> Iterator[Feeds]:
    """Graph feeds of `images` (each (3, S, S)) in batches of `batch`."""
    for start in range(0, len(images), batch):
        feeds: Feeds = {"image": np.stack(images[start:start + batch]).astype(np.float32)}
        feeds.update({name: books[name] for name in inputs if name != "image"})
        yield feeds


def float_nodes(model: onnx.ModelProto, recipe: QuantRecipe) -> list[str]:
    """Names of the nodes of `recipe.op_types` the recipe keeps in float (nodes_to_exclude)."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    kept: set[str] = set()
    if recipe.keep_stem_float:
        inputs = {value.name for value in graph.input}
        kept.update(node.name for node in graph.node if inputs & set(node.input))
    if recipe.keep_attention_float:
        kept.update(node.name for node in graph.node if node.op_type == "MatMul"
                    and not any(name in constants for name in node.input))
    if recipe.keep_heads_float:
        producer = {out: node for node in graph.node for out in node.output}
        pending = [output.name for output in graph.output]
        seen: set[str] = set()
        while pending:  # walk back from every output to the first quantisable node on each path
            node = producer.get(pending.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in recipe.op_types:
                kept.add(node.name)
            else:
                pending.extend(name for name in node.input if name not in constants)
    ordered = [node.name for node in graph.node if node.name in kept and node.op_type in recipe.op_types]
    return ordered


def quantize_graph(fp32_path: Path, target: Path, calibration: Sequence[NDArray[np.float32]], *,
                   books: Mapping[str, NDArray[np.float32]], inputs: Sequence[str], recipe: QuantRecipe,
                   scratch: Path) -> list[str]:
    """Write the static int8 QDQ graph of `fp32_path` to `target`; returns the nodes kept float."""
    prepared = scratch / f"{fp32_path.stem}.prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    excluded = float_nodes(onnx.load(str(prepared), load_external_data=False), recipe)
    extra: dict[str, Any] = {"CalibTensorRangeSymmetric": False}
    if recipe.calibration == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    quantize_static(
        str(prepared), str(target), ImageCalibrationReader(calibration, books, inputs),
        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(recipe.op_types), per_channel=True,
        activation_type=_QTYPE[recipe.activations], weight_type=QuantType.QInt8,
        calibrate_method=_CALIBRATION[recipe.calibration], nodes_to_exclude=excluded, extra_options=extra,
    )
    check_onnx(target)
    return excluded
