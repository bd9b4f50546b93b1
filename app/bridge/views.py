"""Study grouping rules: when a study is complete, and which of its images the model may see."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

from app.bridge.journal import InstanceRecord

FRONTAL_VIEWS = frozenset({"PA", "AP", "AP SUPINE", "PA ERECT", "AP ERECT"})
LATERAL_VIEWS = frozenset({"LL", "RL", "LATERAL", "LAT", "L", "R"})


class ViewDecision(StrEnum):
    FRONTAL = "frontal"
    UNKNOWN = "unknown"  # no ViewPosition: sent to the service, which checks the pixels/headers itself
    LATERAL = "lateral"
    OTHER = "other"  # oblique, decubitus, ...: the model is frontal-only


def classify_view(view_position: str | None) -> ViewDecision:
    if not view_position:
        return ViewDecision.UNKNOWN
    view = view_position.strip().upper()
    if view in FRONTAL_VIEWS:
        return ViewDecision.FRONTAL
    if view in LATERAL_VIEWS:
        return ViewDecision.LATERAL
    return ViewDecision.OTHER


def wants_inference(record: InstanceRecord) -> bool:
    """Frontal views, and images whose view the header does not state."""
    return classify_view(record.view_position) in (ViewDecision.FRONTAL, ViewDecision.UNKNOWN)


def group_by_study(records: Iterable[InstanceRecord]) -> dict[str, list[InstanceRecord]]:
    groups: dict[str, list[InstanceRecord]] = defaultdict(list)
    for record in records:
        groups[record.study_key].append(record)
    return dict(groups)


def is_stable(records: Iterable[InstanceRecord], now: float, stable_seconds: float) -> bool:
    """A study is complete when nothing new arrived for `stable_seconds` (PACS send in bursts)."""
    latest = max((record.received_at for record in records), default=now)
    return now - latest >= stable_seconds
