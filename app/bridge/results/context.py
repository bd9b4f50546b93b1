"""What every result object shares: the source image, the algorithm identity, derived UIDs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from app.bridge.identifiers import derived_uid

SERIES_NUMBERS = {"sr": 9901, "seg": 9902, "heatmap": 9903}


_VALID_AGE = re.compile(r"\d{3}[DWMY]")

# Type 2 patient / study attributes highdicom copies from the source; some real files omit them.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def complete_source(source: pydicom.Dataset) -> pydicom.Dataset:
    """Copy of the source with absent Type 2 patient/study attributes present but empty (as DICOM allows)."""
    completed = pydicom.Dataset(source)
    completed.file_meta = getattr(source, "file_meta", pydicom.dataset.FileMetaDataset())
    for keyword in _TYPE2_COPIED:
        if keyword not in completed:
            setattr(completed, keyword, "")
    # Invalid values in the source would be copied into our objects and fail validation there.
    age = str(completed.get("PatientAge", ""))
    if age and not _VALID_AGE.fullmatch(age):
        del completed.PatientAge
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = completed.get(keyword)
        if spacing is not None and any(float(value) <= 0 for value in spacing):
            delattr(completed, keyword)
    return completed


@dataclass(frozen=True)
class ResultContext:
    """Source image + algorithm identity; derives every UID so that rebuilding is idempotent."""

    source: pydicom.Dataset
    model_name: str
    model_version: str
    manufacturer: str

    @property
    def study_uid(self) -> str:
        return str(self.source.StudyInstanceUID)

    @property
    def source_sop_uid(self) -> str:
        return str(self.source.SOPInstanceUID)

    def series_uid(self, kind: str) -> str:
        """One result series per study, model version and kind of object."""
        return derived_uid(self.study_uid, self.model_name, self.model_version, kind)

    def instance_uid(self, kind: str, *extra: str) -> str:
        return derived_uid(self.source_sop_uid, self.model_name, self.model_version, kind, *extra)

    @property
    def instance_number(self) -> int:
        number = self.source.get("InstanceNumber")
        return int(number) if number not in (None, "") else 1

    def algorithm_identification(self) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(
            name=self.model_name, family=codes.cid7162.ArtificialIntelligence, version=self.model_version
        )

    @property
    def software_version(self) -> str:
        return f"{self.model_name} {self.model_version}"[:64]
