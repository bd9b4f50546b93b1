"""Binary DICOM SEG of the organ masks returned by /segment (one segment per structure)."""

from __future__ import annotations

import base64
import io
from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.sr.codedict import codes

from app.bridge.results.context import SERIES_NUMBERS, STRUCTURE_CODES, ResultContext, vocabulary_code


def decode_mask(mask: dict[str, Any], rows: int, columns: int) -> np.ndarray:
    """PNG mask -> bool (rows, columns) on the source grid (nearest resize if the service used another)."""
    image = Image.open(io.BytesIO(base64.b64decode(mask["png_base64"]))).convert("L")
    if image.size != (columns, rows):
        image = image.resize((columns, rows), Image.Resampling.NEAREST)
    return np.asarray(image) > 127  # (rows, columns)


def build_seg(ctx: ResultContext, segment: dict[str, Any]) -> hd.seg.Segmentation | None:
    """SEG over the source image; None when the service returned no masks."""
    masks = segment.get("masks", [])
    if not masks:
        return None
    rows, columns = int(ctx.source.Rows), int(ctx.source.Columns)
    planes = [decode_mask(mask, rows, columns) for mask in masks]  # K x (rows, columns)
    pixel_array = np.stack(planes, axis=-1)[np.newaxis]  # (1, rows, columns, K)
    descriptions = []
    for number, mask in enumerate(masks, start=1):
        name = str(mask["name"])
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=STRUCTURE_CODES.get(name, vocabulary_code(name)),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=ctx.algorithm_identification(),
            )
        )
    seg = hd.seg.Segmentation(
        source_images=[ctx.source],
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=ctx.series_uid("seg"),
        series_number=SERIES_NUMBERS["seg"],
        sop_instance_uid=ctx.instance_uid("seg"),
        instance_number=ctx.instance_number,
        manufacturer=ctx.manufacturer,
        manufacturer_model_name=ctx.model_name[:64],
        software_versions=ctx.software_version,
        device_serial_number="0",
        series_description=f"AI organ segmentation ({ctx.software_version})"[:64],
        content_label="AI_ORGANS",
        omit_empty_frames=False,
    )
    # Type 2C for images without plane orientation (projection radiographs): copy or leave empty.
    seg.PatientOrientation = ctx.source.get("PatientOrientation", "")
    return seg
