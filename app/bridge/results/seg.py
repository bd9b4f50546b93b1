"""Binary DICOM SEG of the organ masks returned by /segment (one segment per structure)."""

from __future__ import annotations

import base64
import io

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image
from pydicom.sr.codedict import codes

from app.bridge.results.codes import structure_site
from app.bridge.results.context import SERIES_NUMBERS, ResultContext
from app.contract.http import Mask, SegmentResponse


def decode_mask(mask: Mask, rows: int, columns: int) -> np.ndarray:
    """PNG mask -> bool (rows, columns) on the source grid (nearest resize if the service used another)."""
    image = Image.open(io.BytesIO(base64.b64decode(mask.png_base64))).convert("L")
    if image.size != (columns, rows):
        image = image.resize((columns, rows), Image.Resampling.NEAREST)
    return np.asarray(image) > 127  # (rows, columns)


def _description(ctx: ResultContext, number: int, name: str) -> hd.seg.SegmentDescription:
    site = structure_site(name)
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=site.code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=ctx.algorithm_identification(),
    )
    if site.laterality is not None:  # right/left lung: "Lung" modified by laterality (PS3.3 C.8.20.4)
        modifier = pydicom.Dataset()
        modifier.CodeValue = site.laterality.value
        modifier.CodingSchemeDesignator = site.laterality.scheme_designator
        modifier.CodeMeaning = site.laterality.meaning
        property_type = description.SegmentedPropertyTypeCodeSequence[0]
        property_type.SegmentedPropertyTypeModifierCodeSequence = [modifier]
    return description


def build_seg(ctx: ResultContext, segment: SegmentResponse) -> hd.seg.Segmentation | None:
    """SEG over the source image; None when the service returned no masks."""
    if not segment.masks:
        return None
    rows, columns = int(ctx.source.Rows), int(ctx.source.Columns)
    planes = [decode_mask(mask, rows, columns) for mask in segment.masks]  # K x (rows, columns)
    pixel_array = np.stack(planes, axis=-1)[np.newaxis]  # (1, rows, columns, K)
    descriptions = [_description(ctx, number, m.name) for number, m in enumerate(segment.masks, start=1)]
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
