"""MIMIC-CXR (PhysioNet, credentialed access) in its released folder layout.

Expected under `root` (MIMIC-CXR-JPG or MIMIC-CXR DICOM, plus the reports archive unpacked beside it):

    files/p10/p10000032/s50414267/02aa804e-....jpg   (or .dcm)
    files/p10/p10000032/s50414267.txt                 free-text report of that study
    mimic-cxr-2.0.0-split.csv[.gz]                    dicom_id,study_id,subject_id,split
    mimic-cxr-2.0.0-metadata.csv[.gz]                 (optional) dicom_id,...,ViewPosition,...

The official split names `validate`; it becomes `val`. Pretraining text = FINDINGS + IMPRESSION sections
(the whole report when neither header is present). With `frontal_only` (default) images whose
ViewPosition is not PA/AP are dropped; without the metadata file every image is kept.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from pathlib import Path

from training.data.manifest import ManifestRecord

logger = logging.getLogger(__name__)

SOURCE = "mimic-cxr"
SPLIT_NAMES: dict[str, str] = {"train": "train", "validate": "val", "val": "val", "test": "test"}
FRONTAL_POSITIONS: frozenset[str] = frozenset({"PA", "AP"})
_SECTION = re.compile(r"^\s*([A-Z][A-Z /]+):", re.MULTILINE)


def _open_csv(root: Path, stem: str) -> list[dict[str, str]] | None:
    for candidate in (root / f"{stem}.csv", root / f"{stem}.csv.gz"):
        if candidate.is_file():
            raw = candidate.read_bytes()
            text = gzip.decompress(raw).decode("utf-8") if candidate.suffix == ".gz" else raw.decode("utf-8")
            return list(csv.DictReader(io.StringIO(text)))
    return None


def report_sections(text: str) -> str:
    """FINDINGS and IMPRESSION of a MIMIC report, joined; the full text when neither header exists."""
    headers = list(_SECTION.finditer(text))
    kept: list[str] = []
    for index, match in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        if match.group(1).strip() in {"FINDINGS", "IMPRESSION"}:
            kept.append(" ".join(text[match.end() : end].split()))
    return " ".join(kept) if kept else " ".join(text.split())


def read_mimic_cxr(root: Path, *, frontal_only: bool = True) -> list[ManifestRecord]:
    """One record per image listed in the official split file whose image and report both exist."""
    split_rows = _open_csv(root, "mimic-cxr-2.0.0-split")
    if split_rows is None:
        raise FileNotFoundError("mimic-cxr-2.0.0-split.csv[.gz] not found under the MIMIC root")
    metadata = _open_csv(root, "mimic-cxr-2.0.0-metadata")
    views = {row["dicom_id"]: row.get("ViewPosition", "") for row in metadata} if metadata else {}
    report_cache: dict[Path, str] = {}
    records: list[ManifestRecord] = []
    missing = 0
    for row in split_rows:
        view = views.get(row["dicom_id"], "")
        if frontal_only and views and view not in FRONTAL_POSITIONS:
            continue
        subject = f"p{row['subject_id']}"
        study_dir = root / "files" / subject[:3] / subject / f"s{row['study_id']}"
        image = next(
            (
                study_dir / f"{row['dicom_id']}{ext}"
                for ext in (".jpg", ".dcm")
                if (study_dir / f"{row['dicom_id']}{ext}").is_file()
            ),
            None,
        )
        report_path = study_dir.with_suffix(".txt")
        if image is None or not report_path.is_file():
            missing += 1
            continue
        if report_path not in report_cache:
            report_cache[report_path] = report_sections(report_path.read_text(encoding="utf-8"))
        records.append(
            ManifestRecord(
                image=str(image.resolve()),
                split=SPLIT_NAMES[row["split"].strip()],
                source=SOURCE,
                view=view,
                report=report_cache[report_path] or None,
            )
        )
    if missing:
        logger.warning("mimic-cxr: %d split rows without an image or report file were skipped", missing)
    logger.info("mimic-cxr: %d records", len(records))
    return records
