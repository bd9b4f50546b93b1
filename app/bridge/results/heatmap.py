"""Heatmap as a Secondary Capture overlay (RGB), visibly and in its header labelled AI-generated.

Viewers without AI plug-ins show a Secondary Capture; the burned-in banner makes sure nobody mistakes
the colour overlay for acquired image content.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.pixels import apply_voi_lut

from app.bridge.results.context import SERIES_NUMBERS, ResultContext

OVERLAY_OPACITY = 0.45
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


def decode_heatmap(heatmap: dict[str, Any], rows: int, columns: int) -> np.ndarray:
    """Service PNG -> float32 (rows, cols) in [0, 1] on the source grid."""
    image = Image.open(io.BytesIO(base64.b64decode(heatmap["png_base64"]))).convert("L")
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


def build_heatmap_sc(ctx: ResultContext, finding: dict[str, Any], index: int) -> hd.sc.SCImage:
    """One overlay object for one grounded finding."""
    name = str(finding["name"])
    rows, columns = int(ctx.source.Rows), int(ctx.source.Columns)
    heat = decode_heatmap(finding["heatmap"], rows, columns)
    score = float(finding.get("score", 0.0))
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
    image.Laterality = ctx.source.get("Laterality", "")  # Type 2C in General Series: copy or empty
    image.SeriesDescription = f"AI-generated heatmaps ({ctx.software_version})"[:64]
    image.ImageComments = f"{AI_LABEL}. Finding: {name}; probability {score:.4f}."[:10240]
    image.BurnedInAnnotation = "YES"
    image.ImageType = ["DERIVED", "SECONDARY", "AI_HEATMAP"]
    image.DerivationDescription = f"Attention heatmap of {ctx.software_version} over the source image"[:1024]
    image.SoftwareVersions = ctx.software_version
    return image
