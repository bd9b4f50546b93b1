"""Service-shaped answers built in code, so builder and dispatcher tests need no running service."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from app.bridge.inference import InferenceResult
from app.contract.vocabulary import SEGMENTATION_STRUCTURES

MODEL = {
    "name": "medslip-cxr", "version": "0.0.1-test", "sha256": "0" * 64, "provider": "CPUExecutionProvider"
}
FINDINGS = [("effusion", 0.81, True), ("atelectasis", 0.34, False), ("cardiomegaly", 0.62, True)]
#: findings the fake service has no validated operating point for ("calibrated": false)
UNCALIBRATED = {"cardiomegaly"}
STRUCTURES = list(SEGMENTATION_STRUCTURES)


def png_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def model_metadata(name: str, version: str) -> dict[str, Any]:
    """GET /v2/models/{name} as the service answers it (app.contract.http.ModelMetadata)."""
    tensor = {"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}
    return {"name": name, "versions": [version], "platform": "onnxruntime_onnx", "inputs": [tensor],
            "outputs": [{"name": "pathology_probs", "datatype": "FP32", "shape": [-1, 75]}], "parameters": {}}


def problem(status: int, code: str) -> dict[str, Any]:
    """A problem+json body as the service sends it (app.contract.http.Problem)."""
    return {"type": "about:blank", "title": code.replace("_", " "), "status": status, "code": code,
            "detail": f"test {code}"}


def _envelope(width: int, height: int) -> dict[str, Any]:
    """The fields every service answer carries besides its results (app.contract.http.ResponseBase)."""
    return {
        "model": MODEL,
        "input": {"format": "dicom", "rows": height, "columns": width, "photometric": "MONOCHROME2"},
        "timing_ms": {"queue": 0.1, "decode": 1.0, "infer": 2.0, "post": 0.5},
        "batch_size": 1,
    }


def fake_inference(width: int, height: int) -> InferenceResult:
    """The answers of `fake_answers`, parsed with the service's response models as the client does."""
    return InferenceResult.from_json(fake_answers(width, height))


def fake_answers(width: int, height: int) -> dict[str, Any]:
    """classify / ground / segment JSON bodies as the service sends them, for an image of this size."""
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.exp(
        -(((xx - width * 0.3) / (width * 0.15)) ** 2 + ((yy - height * 0.6) / (height * 0.15)) ** 2)
    )
    heat = np.round(blob * 255).astype(np.uint8)  # (H, W)
    classify = {
        "findings": [
            {"name": n, "score": s, "threshold": 0.5, "positive": p, "calibrated": n not in UNCALIBRATED,
             "custom": False}
            for n, s, p in FINDINGS
        ],
        **_envelope(width, height),
    }
    ground = {
        "findings": [
            {
                "name": n,
                "score": s,
                "threshold": 0.5,
                "positive": p,
                "calibrated": n not in UNCALIBRATED,
                "custom": False,
                "heatmap": {"png_base64": png_base64(heat), "width": width, "height": height},
                "peak": {"x": int(width * 0.3), "y": int(height * 0.6)},
                "box": [0, 0, width // 2, height // 2],
                "anatomy": [
                    {"name": "lower_right_lobe", "score": 0.7},
                    {"name": "left_lung_unspec", "score": 0.2},
                ],
            }
            for n, s, p in FINDINGS[:2]
        ],
        **_envelope(width, height),
    }
    masks = []
    for index, name in enumerate(STRUCTURES):
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : height // 2 + index * 2, width // 6 : width // 2] = 255
        masks.append(
            {
                "name": name,
                "kind": "anatomy",
                "png_base64": png_base64(mask),
                "width": width,
                "height": height,
                "area_fraction": float((mask > 0).mean()),
                "box": [width // 6, height // 4, width // 2, height // 2],
            }
        )
    segment = {"masks": masks, **_envelope(width, height)}
    return {"classify": classify, "ground": ground, "segment": segment}


def make_chest_dicom(
    *,
    view: str | None = "PA",
    study_uid: str | None = None,
    sop_uid: str | None = None,
    rows: int = 64,
    columns: int = 64,
    sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    patient_name: str = "Doe^Jane",
    patient_id: str = "PID-0001-TEST",
) -> bytes:
    """A small, valid DX Part 10 file (explicit VR LE) with a smooth synthetic 'chest'."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    sop_uid = UID(sop_uid) if sop_uid else generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC123456789"
    ds.ReferringPhysicianName = ""
    ds.Modality = "DX"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    if view is not None:
        ds.ViewPosition = view
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ["L", "F"]
    ds.Manufacturer = "test"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    yy, xx = np.mgrid[0:rows, 0:columns]
    pixels = (128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 9.0)).astype(np.uint8)  # (rows, columns)
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
