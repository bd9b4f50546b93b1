"""Tiny in-memory DICOM / PNG / JPEG inputs, built in code so the tests are hermetic.

Two DICOM builders: `make_dataset` (any pixel array, photometric, bit depth, transfer syntax; for the
pixel module's tests) and `dicom_dataset` (a valid 8-bit chest DX full of identifying attributes; for
the service's tests, to prove none leak). `dicom_bytes` serialises either.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# Identifying values planted in fixtures; no error message or log line may ever contain them.
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-4711-XYZ"
PATIENT_BIRTH_DATE = "19450311"
STUDY_UID = "1.2.826.0.1.3680043.8.498.4711"
SERIES_UID = "1.2.826.0.1.3680043.8.498.4712"
SOP_INSTANCE_UID = "1.2.826.0.1.3680043.8.498.4713"
IDENTIFYING_VALUES = (
    "Doe",
    "Jane",
    PATIENT_ID,
    PATIENT_BIRTH_DATE,
    STUDY_UID,
    SERIES_UID,
    SOP_INSTANCE_UID,
)


def make_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **elements: Any,
) -> Dataset:
    """A single-frame image dataset (with patient identity) around ``pixels`` (H, W) or (H, W, 3).

    The pixel dtype decides BitsAllocated and PixelRepresentation; extra keyword arguments are set
    as DICOM elements by keyword (e.g. ``WindowCenter=100``) and override the defaults.
    """
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(SOP_INSTANCE_UID)
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = SOP_INSTANCE_UID
    dataset.StudyInstanceUID = STUDY_UID
    dataset.SeriesInstanceUID = SERIES_UID
    dataset.PatientName = PATIENT_NAME
    dataset.PatientID = PATIENT_ID
    dataset.PatientBirthDate = PATIENT_BIRTH_DATE
    dataset.Modality = "DX"
    dataset.BodyPartExamined = "CHEST"
    dataset.ViewPosition = "PA"
    bits_allocated = pixels.dtype.itemsize * 8
    dataset.Rows, dataset.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    dataset.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        dataset.PlanarConfiguration = 0
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = bits_allocated
    dataset.BitsStored = bits_stored or bits_allocated
    dataset.HighBit = dataset.BitsStored - 1
    dataset.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
    big_endian = transfer_syntax == ExplicitVRBigEndian
    native = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    uid = UID(transfer_syntax)
    if uid.is_transfer_syntax and uid.is_compressed:
        # Not a valid codestream: enough for header-level tests (refused before decoding).
        dataset.PixelData = encapsulate([native])
        dataset["PixelData"].VR = "OB"
    else:
        dataset.PixelData = native
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    return dataset


def dicom_bytes(dataset: Dataset | None = None, *, preamble: bool = True) -> bytes:
    """Serialise a dataset (default: `dicom_dataset()`) as a Part 10 file, or as a bare dataset (no
    preamble, no file meta)."""
    if dataset is None:
        dataset = dicom_dataset()
    buffer = BytesIO()
    transfer_syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if preamble and not transfer_syntax.is_transfer_syntax:  # private: the writer needs the encoding
        dataset.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    elif preamble:
        dataset.save_as(buffer, enforce_file_format=True)
    else:
        bare = dataset.copy()
        del bare.file_meta
        bare.save_as(buffer, implicit_vr=transfer_syntax.is_implicit_VR, little_endian=True)
    return buffer.getvalue()


def with_text_value(dataset: Dataset, keyword: str, text: str) -> bytes:
    """The dataset serialised with ``text`` as the value of ``keyword``, under the element's own VR
    (a hand-edited header: "one" in Samples per Pixel, "abc" in Rescale Slope).

    Implicit VR files carry no VR, so the reader applies the dictionary VR to the text's bytes; for
    explicit VR the element is written as LO and its VR bytes are then patched to the dictionary VR
    (both short-length VRs, so the rest of the file is unchanged).
    """
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    if keyword in dataset:
        delattr(dataset, keyword)
    dataset.add_new(tag, "LO", text)
    data = dicom_bytes(dataset)
    if UID(dataset.file_meta.TransferSyntaxUID).is_implicit_VR:
        return data
    marker = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"LO"
    assert data.count(marker) == 1, "the patch must hit exactly one element"
    return data.replace(marker, marker[:4] + dictionary_VR(tag)[:2].encode())


def raster_bytes(array: np.ndarray, fmt: str = "PNG", **save_options: Any) -> bytes:
    """Encode an array (uint8 gray/RGB/RGBA or uint16 gray) with Pillow."""
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height`` but which carries almost no pixel data.

    Decoding it would allocate the declared size; the refusal must come from the header alone.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gradient(height: int = 64, width: int = 64, maximum: int = 255, dtype: type = np.uint16) -> np.ndarray:
    """A left-to-right ramp from 0 to ``maximum``: simple to reason about after any LUT."""
    row = np.linspace(0, maximum, width).round()
    return np.tile(row, (height, 1)).astype(dtype)  # (H, W)


def phantom(height: int, width: int, maximum: int = 4095, seed: int = 0) -> np.ndarray:
    """A chest-like film (H, W): background ramp, body, two textured lungs, a bright spine and a
    saturated marker with sharp edges, plus mild noise; uint8 when ``maximum`` <= 255, else uint16."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= height
    x /= width
    value = 0.15 + 0.1 * y
    value = np.where(((x - 0.5) / 0.42) ** 2 + ((y - 0.55) / 0.5) ** 2 < 1, 0.55, value)
    for centre in (0.33, 0.67):
        lung = ((x - centre) / 0.13) ** 2 + ((y - 0.45) / 0.28) ** 2 < 1
        value = np.where(lung, 0.3 + 0.1 * np.sin(40 * y), value)
    value = np.where(np.abs(x - 0.5) < 0.03, 0.85, value)
    value = np.where((x > 0.05) & (x < 0.12) & (y > 0.05) & (y < 0.08), 1.0, value)
    value += np.random.default_rng(seed).normal(0.0, 0.01, value.shape)
    dtype = np.uint8 if maximum <= 255 else np.uint16
    return np.clip(value * maximum, 0, maximum).round().astype(dtype)  # (H, W)


# --- the service's inputs ---------------------------------------------------------------------------

#: Identifying attributes planted in `dicom_dataset`; no response or log line may contain them.
PHI = {
    "PatientName": "Zebulon^Quixotic",
    "PatientID": "PID-99887766",
    "PatientBirthDate": "19230417",
    "StudyDate": "20240102",
    "AccessionNumber": "ACC-55443322",
}


def png_bytes(height: int = 80, width: int = 120, *, bits: int = 8, seed: int = 0) -> bytes:
    """A random grayscale PNG (8- or 16-bit)."""
    rng = np.random.default_rng(seed)
    if bits == 16:
        array = rng.integers(0, 65535, (height, width), dtype=np.uint16)
        image = Image.fromarray(array)
    else:
        image = Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8))
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(height: int = 80, width: int = 120) -> bytes:
    rng = np.random.default_rng(1)
    buffer = BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def dicom_dataset(rows: int = 64, columns: int = 96, **overrides: Any) -> Dataset:
    """A valid 8-bit MONOCHROME2 DX chest dataset full of identifying attributes (to prove none leak)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ramp = (np.arange(rows * columns, dtype=np.uint32) % 251).astype(np.uint8)
    ds.PixelData = ramp.reshape(rows, columns).tobytes()
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds
