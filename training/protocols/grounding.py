"""Zero-shot grounding: the finding heat map of a class against its radiologist box or mask.

Per region (a CXR14 / RSNA / MS-CXR box, a SIIM mask) the evaluator's metrics (`training.metrics.
grounding`): pointing game (the map's maximum inside the region), IoU and Dice of the min-max normalised
map thresholded at 0.1, 0.2, 0.3, 0.4 and 0.5 and averaged ("mIoU" / "Dice over thresholds"), and CNR
(|mean in - mean out| / sqrt(var in + var out), BioViL's contrast-to-noise ratio). Maps are resampled
to the film's own pixels first (letterbox undone), so the boxes are scored where the radiologist drew
them. Summaries per class and over every region ("all"); figures are means over regions. A region is
scored by its class's prompt (`"query": "class"`, the default) and, for MS-CXR, also by its own phrase
(`"query": "phrase"`): those go to a `phrases` section summarised by category the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from training.evaluation.evaluate import grounding_summary
from training.metrics import DEFAULT_THRESHOLDS, GroundingScores


def _scores(item: Mapping[str, Any]) -> GroundingScores:
    return GroundingScores(pointing_hit=bool(item["pointing_hit"]), iou=float(item["iou"]),
                           dice=float(item["dice"]), cnr=float(item["cnr"]),
                           heat_ratio=float(item["heat_ratio"]))


def grounding_section(rows: Sequence[Mapping[str, Any]], query: str = "class") -> dict[str, Any] | None:
    """{"thresholds", "classes": {class: summary}, "all": summary} of the regions scored by `query`
    ("class" | "phrase"), or None when there are none."""
    by_class: dict[str, list[GroundingScores]] = {}
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for item in row.get("grounding", []):
            if item.get("query", "class") != query:
                continue
            by_class.setdefault(item["class"], []).append(_scores(item))
            kinds.setdefault(item["class"], set()).add(item["kind"])
    if not by_class:
        return None
    every = [score for items in by_class.values() for score in items]
    all_kinds = ", ".join(sorted({kind for values in kinds.values() for kind in values}))
    return {
        "thresholds": list(DEFAULT_THRESHOLDS),
        "classes": {name: grounding_summary(items, ", ".join(sorted(kinds[name])))
                    for name, items in sorted(by_class.items())},
        "all": grounding_summary(every, all_kinds),
    }


def grounding_with_phrases(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The class-prompt section with the phrase section under "phrases" (when phrases were grounded);
    "classes" is empty and "all" None when only phrases were."""
    section = grounding_section(rows)
    phrases = grounding_section(rows, query="phrase")
    if phrases is None:
        return section
    if section is None:
        section = {"thresholds": phrases["thresholds"], "classes": {}, "all": None}
    return {**section, "phrases": phrases}
