"""Builds every result object for one inferred instance, in a fixed order with derived UIDs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pydicom

from app.bridge.inference import InferenceResult
from app.bridge.results.context import ResultContext, complete_source
from app.bridge.results.heatmap import build_heatmap_sc
from app.bridge.results.seg import build_seg
from app.bridge.results.source_modules import copy_patient_and_study
from app.bridge.results.sr import build_sr


@dataclass(frozen=True)
class ResultObject:
    """A built DICOM object and the file name it is spooled under."""

    kind: str  # "sr" | "seg" | "heatmap"
    file_name: str
    dataset: pydicom.Dataset


def build_results(
    source: pydicom.Dataset, inference: InferenceResult, manufacturer: str, max_heatmaps: int
) -> list[ResultObject]:
    """SR + SEG (when masks came back) + heatmap overlays of the top-scoring grounded findings."""
    model = inference.classify.model
    completed = complete_source(source)
    ctx = ResultContext(
        source=completed, model_name=model.name, model_version=model.version, manufacturer=manufacturer
    )
    with warnings.catch_warnings():
        # highdicom's person-name style check quotes the patient's name; the value is the PACS's, kept as is.
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        objects = [ResultObject("sr", "sr.dcm", build_sr(ctx, inference.classify, inference.ground))]
        seg = build_seg(ctx, inference.segment)
        if seg is not None:
            objects.append(ResultObject("seg", "seg.dcm", seg))
        grounded = list(inference.ground.findings) if inference.ground is not None else []
        grounded.sort(key=lambda f: f.score, reverse=True)  # overlays of the top scores
        for index, finding in enumerate(grounded[:max_heatmaps]):
            heatmap = build_heatmap_sc(ctx, finding, index)
            objects.append(ResultObject("heatmap", f"heatmap_{index}.dcm", heatmap))
    for obj in objects:
        copy_patient_and_study(completed, obj.dataset)
    return objects
