"""Builds every result object for one inferred instance, in a fixed order with derived UIDs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pydicom

from app.bridge.results.context import ResultContext, complete_source
from app.bridge.results.heatmap import build_heatmap_sc
from app.bridge.results.seg import build_seg
from app.bridge.results.sr import build_sr


@dataclass(frozen=True)
class ResultObject:
    """A built DICOM object and the file name it is spooled under."""

    kind: str  # "sr" | "seg" | "heatmap"
    file_name: str
    dataset: pydicom.Dataset


def build_results(
    source: pydicom.Dataset, inference: dict[str, Any], manufacturer: str, max_heatmaps: int
) -> list[ResultObject]:
    """SR + SEG (when masks came back) + heatmap overlays of the top-scoring grounded findings."""
    model = inference["classify"].get("model", {})
    ctx = ResultContext(
        source=complete_source(source),
        model_name=str(model.get("name", "medslip")),
        model_version=str(model.get("version", "unknown")),
        manufacturer=manufacturer,
    )
    with warnings.catch_warnings():
        # highdicom's person-name style check quotes the patient's name; the value is the PACS's, kept as is.
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        objects = [ResultObject("sr", "sr.dcm", build_sr(ctx, inference["classify"], inference["ground"]))]
        seg = build_seg(ctx, inference["segment"])
        if seg is not None:
            objects.append(ResultObject("seg", "seg.dcm", seg))
        grounded = [f for f in inference["ground"].get("findings", []) if f.get("heatmap")]
        grounded.sort(key=lambda f: float(f.get("score", 0.0)), reverse=True)  # overlays of the top scores
        for index, finding in enumerate(grounded[:max_heatmaps]):
            heatmap = build_heatmap_sc(ctx, finding, index)
            objects.append(ResultObject("heatmap", f"heatmap_{index}.dcm", heatmap))
    return objects
