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
