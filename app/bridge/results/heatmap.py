"""Heatmap as a Secondary Capture overlay (RGB), visibly and in its header labelled AI-generated.

Viewers without AI plug-ins show a Secondary Capture; the burned-in banner makes sure nobody mistakes
the colour overlay for acquired image content. Not a Parametric Map: that IOD requires a Frame of
Reference and per-frame Plane Position/Orientation (Patient), a 3-D geometry a projection radiograph
does not have (docs/bridge.md quotes the validator). Source Image and Referenced Image Sequences name
the radiograph the map was computed from, so viewers can show the two side by side.
"""

from __future__ import annotations

import base64
import io

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.pixels import apply_voi_lut
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from app.bridge.results.context import SERIES_NUMBERS, ResultContext
from app.bridge.results.source_modules import source_image_item
from app.contract.http import GroundedFinding, Heatmap

OVERLAY_OPACITY = 0.45
SOURCE_FOR_PROCESSING = codes.DCM.SourceImageForImageProcessingOperation
AI_LABEL = "AI-GENERATED HEATMAP - RESEARCH USE, NOT FOR DIAGNOSIS"


def render_grayscale(source: pydicom.Dataset) -> np.ndarray:
    """Display rendering of the source (VOI LUT/window, MONOCHROME1 inverted) as uint8 (rows, cols)."""
    pixels = source.pixel_array
    if pixels.ndim != 2:
        raise ValueError("heatmap overlay needs a single-frame grayscale source")
    values = np.asarray(apply_voi_lut(pixels, source), dtype=np.float32)  # (rows, cols)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if str(source.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.round(scaled * 255).astype(np.uint8)


def decode_heatmap(heatmap: Heatmap, rows: int, columns: int) -> np.ndarray:
    """Service PNG -> float32 (rows, cols) in [0, 1] on the source grid."""
    image = Image.open(io.BytesIO(base64.b64decode(heatmap.png_base64))).convert("L")
    if image.size != (columns, rows):
        image = image.resize((columns, rows), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def overlay(gray: np.ndarray, heat: np.ndarray, label: str) -> np.ndarray:
    """Blend a red-to-yellow map over the gray image and burn in the AI label; uint8 (rows, cols, 3)."""
    base = np.repeat(gray[..., np.newaxis].astype(np.float32), 3, axis=-1)  # (rows, cols, 3)
    colour = np.stack([np.full_like(heat, 255.0), 255.0 * heat, np.zeros_like(heat)], axis=-1)
    alpha = (OVERLAY_OPACITY * heat)[..., np.newaxis]  # (rows, cols, 1): cold areas stay untouched
    blended = Image.fromarray(np.round(base * (1 - alpha) + colour * alpha).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(blended)
    banner_height = max(12, gray.shape[0] // 40)
    draw.rectangle((0, 0, gray.shape[1], banner_height), fill=(0, 0, 0))
    draw.text((2, 1), label, fill=(255, 255, 0))
    return np.asarray(blended)


def build_heatmap_sc(ctx: ResultContext, finding: GroundedFinding, index: int) -> hd.sc.SCImage:
    """One overlay object for one grounded finding."""
    name, score = finding.name, finding.score
    rows, columns = int(ctx.source.Rows), int(ctx.source.Columns)
    heat = decode_heatmap(finding.heatmap, rows, columns)
    label = f"{AI_LABEL} | {name} p={score:.2f} | {ctx.software_version}"
    pixels = overlay(render_grayscale(ctx.source), heat, label)
    orientation = ctx.source.get("PatientOrientation")
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ctx.source,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=ctx.series_uid("heatmap"),
        series_number=SERIES_NUMBERS["heatmap"],
        sop_instance_uid=ctx.instance_uid("heatmap", name),
        instance_number=ctx.instance_number * 100 + index + 1,
        manufacturer=ctx.manufacturer,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2 else ("L", "F"),
        transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian,
    )
    # Laterality (General Series, 2C) is absent for an unpaired body part such as the chest, never
    # empty; Image Laterality says so explicitly ("U", unpaired) unless the source states its own.
    if "Laterality" in image:
        del image.Laterality
    if ctx.source.get("Laterality"):
        image.Laterality = ctx.source.Laterality
    image.ImageLaterality = ctx.source.get("ImageLaterality") or "U"
    source_item = source_image_item(ctx.source)
    source_item.PurposeOfReferenceCodeSequence = [_code_item(SOURCE_FOR_PROCESSING)]
    image.SourceImageSequence = [source_item]  # General Image: the image this one was derived from
    image.ReferencedImageSequence = [source_image_item(ctx.source)]  # and the image it belongs with
    image.SeriesDescription = f"AI-generated heatmaps ({ctx.software_version})"[:64]
    image.ImageComments = f"{AI_LABEL}. Finding: {name}; probability {score:.4f}."[:10240]
    image.BurnedInAnnotation = "YES"
    image.ImageType = ["DERIVED", "SECONDARY", "AI_HEATMAP"]
    image.DerivationDescription = f"Attention heatmap of {ctx.software_version} over the source image"[:1024]
    image.SoftwareVersions = ctx.software_version
    return image


def _code_item(code: Code) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item
