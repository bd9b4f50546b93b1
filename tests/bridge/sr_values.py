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


def sr_finding_sites(sr: pydicom.Dataset) -> dict[str, str]:
    """finding name -> finding site (anatomy) of each TID 1501 measurement group that has one."""
    sites: dict[str, str] = {}

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if item.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group":
                codes = {
                    child.ConceptNameCodeSequence[0].CodeMeaning: child.ConceptCodeSequence[0].CodeMeaning
                    for child in item.ContentSequence
                    if "ConceptCodeSequence" in child
                }
                if "Finding Site" in codes:
                    sites[codes["Finding"]] = codes["Finding Site"]
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return sites


def sr_presence(sr: pydicom.Dataset) -> dict[str, str]:
    """finding name -> "Present" / "Absent" of each TID 1501 group that carries that evaluation."""
    presence: dict[str, str] = {}

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if item.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group":
                finding = None
                for child in item.ContentSequence:
                    if "ConceptCodeSequence" not in child:
                        continue
                    name = child.ConceptNameCodeSequence[0].CodeMeaning
                    value = child.ConceptCodeSequence[0].CodeMeaning
                    if name == "Finding":
                        finding = value
                    elif value in ("Present", "Absent") and finding is not None:
                        presence[finding] = value
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return presence
