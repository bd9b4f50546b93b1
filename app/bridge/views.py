"""Study grouping rules: when a study is complete, and which of its images the model may see."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

from app.bridge.journal import InstanceRecord
from app.contract.vocabulary import ViewKind, view_kind


class ViewDecision(StrEnum):
    FRONTAL = "frontal"
    UNKNOWN = "unknown"  # no ViewPosition: sent to the service, which checks the pixels/headers itself
    LATERAL = "lateral"
    OTHER = "other"  # oblique, decubitus, ...: the model is frontal-only


_DECISIONS = {
    ViewKind.FRONTAL: ViewDecision.FRONTAL,
    ViewKind.UNSTATED: ViewDecision.UNKNOWN,
    ViewKind.LATERAL: ViewDecision.LATERAL,
    ViewKind.OBLIQUE: ViewDecision.OTHER,
    ViewKind.DECUBITUS: ViewDecision.OTHER,  # the service would accept it with a warning; the bridge
    # leaves lying-down films out of automatic processing
}


def classify_view(view_position: str | None) -> ViewDecision:
    """The contract's view rule (`app.contract.vocabulary.view_kind`), mapped to what the bridge does."""
    return _DECISIONS[view_kind(view_position)]


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
