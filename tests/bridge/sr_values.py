"""Read the bridge's numbers back out of a TID 1500 SR (to compare them with the service's)."""

from __future__ import annotations

import pydicom


def sr_probabilities(sr: pydicom.Dataset) -> dict[str, float]:
    """finding name -> NUM value, read back from the SR content tree (TID 1500 -> 1501 groups)."""
    values: dict[str, float] = {}

    def walk(items: pydicom.Sequence, finding: str | None) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            if name == "Finding" and "ConceptCodeSequence" in item:
                finding = item.ConceptCodeSequence[0].CodeMeaning
            if item.ValueType == "NUM" and name == "Probability of presence" and finding is not None:
                values[finding] = float(item.MeasuredValueSequence[0].NumericValue)
            if "ContentSequence" in item:
                walk(item.ContentSequence, finding)

    walk(sr.ContentSequence, None)
    return values


def _group_codes(sr: pydicom.Dataset) -> list[dict[str, str]]:
    """Concept name -> coded value of every TID 1501 measurement group, in document order."""
    groups: list[dict[str, str]] = []

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if item.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group":
                groups.append({
                    child.ConceptNameCodeSequence[0].CodeMeaning: child.ConceptCodeSequence[0].CodeMeaning
                    for child in item.ContentSequence
                    if "ConceptCodeSequence" in child
                })
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return groups


def sr_finding_sites(sr: pydicom.Dataset) -> dict[str, str]:
    """finding name -> finding site (anatomy) of each TID 1501 measurement group that has one."""
    return {codes["Finding"]: codes["Finding Site"] for codes in _group_codes(sr) if "Finding Site" in codes}


def sr_presence(sr: pydicom.Dataset) -> dict[str, str]:
    """finding name -> "Present" / "Absent" of each TID 1501 group that carries that evaluation (a
    qualitative evaluation is coded under the finding's own concept name)."""
    groups = _group_codes(sr)
    return {codes["Finding"]: codes[codes["Finding"]] for codes in groups if codes["Finding"] in codes}
