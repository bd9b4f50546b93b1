"""Read the bridge's numbers back out of a TID 1500 SR with highdicom, keyed by finding code.

Reading through highdicom (not our own tree walk) is what an AI-results viewer does: it finds each
finding by its coded concept (e.g. SCT 36118008 Pneumothorax), not by a display string.
"""

from __future__ import annotations

from typing import cast

import highdicom as hd
import pydicom
from pydicom.sr.coding import Code

from app.bridge.results.codes import PROBABILITY, anatomy_site, finding_code

CodeKey = tuple[str, str]  # (coding scheme designator, code value)


def key(code: hd.sr.CodedConcept | Code | None) -> CodeKey:
    assert code is not None, "a measurement group without a finding code"
    return (str(code.scheme_designator), str(code.value))


def by_code(scores: dict[str, float]) -> dict[CodeKey, float]:
    """Service finding name -> score, re-keyed by the code the bridge writes for each name."""
    return {key(finding_code(name)): score for name, score in scores.items()}


def _groups(sr: pydicom.Dataset) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    report = cast(hd.sr.MeasurementReport, hd.sr.ComprehensiveSR.from_dataset(sr).content)
    return list(report.get_image_measurement_groups())


def sr_probabilities(sr: pydicom.Dataset) -> dict[CodeKey, float]:
    """finding code -> NUM "Probability" (DCM 122157) of its TID 1501 group."""
    values: dict[CodeKey, float] = {}
    for group in _groups(sr):
        [measurement] = group.get_measurements(name=PROBABILITY)
        values[key(group.finding_type)] = float(measurement.value)
    return values


def sr_finding_sites(sr: pydicom.Dataset) -> dict[CodeKey, tuple[CodeKey, CodeKey | None]]:
    """finding code -> (site code, laterality code or None) of each group that has a site."""
    sites = {}
    for group in _groups(sr):
        if group.finding_sites:
            site = group.finding_sites[0]
            laterality = key(site.laterality) if site.laterality is not None else None
            sites[key(group.finding_type)] = (key(site.value), laterality)
    return sites


def expected_site(anatomy_name: str) -> tuple[CodeKey, CodeKey | None]:
    site = anatomy_site(anatomy_name)
    return key(site.code), (key(site.laterality) if site.laterality is not None else None)


def sr_presence(sr: pydicom.Dataset) -> dict[CodeKey, str]:
    """finding code -> "Present" / "Absent" where the group carries that evaluation."""
    presence = {}
    for group in _groups(sr):
        for evaluation in group.get_qualitative_evaluations():
            value = cast(hd.sr.CodedConcept, evaluation.value)
            presence[key(group.finding_type)] = str(value.meaning)
    return presence
