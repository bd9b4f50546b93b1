"""Frontal-view selection and the study stability window."""

from __future__ import annotations

import pytest

from app.bridge.journal import InstanceRecord, InstanceState
from app.bridge.views import ViewDecision, classify_view, group_by_study, is_stable, wants_inference


def _record(key: str, study: str, received_at: float, view: str | None = "PA") -> InstanceRecord:
    return InstanceRecord(key, study, InstanceState.RECEIVED, "test", view, received_at, received_at)


@pytest.mark.parametrize(
    ("view", "decision"),
    [
        ("PA", ViewDecision.FRONTAL),
        ("ap", ViewDecision.FRONTAL),
        (" AP ", ViewDecision.FRONTAL),
        ("LL", ViewDecision.LATERAL),
        ("RL", ViewDecision.LATERAL),
        ("LATERAL", ViewDecision.LATERAL),
        ("LEFT LATERAL", ViewDecision.LATERAL),
        ("AP SUPINE", ViewDecision.FRONTAL),
        ("LLD", ViewDecision.OTHER),
        ("RAO", ViewDecision.OTHER),
        (None, ViewDecision.UNKNOWN),
        ("", ViewDecision.UNKNOWN),
    ],
)
def test_classify_view(view: str | None, decision: ViewDecision) -> None:
    assert classify_view(view) is decision


def test_only_frontal_and_unknown_views_go_to_the_model() -> None:
    assert wants_inference(_record("a", "s", 0, "PA"))
    assert wants_inference(_record("a", "s", 0, None))
    assert not wants_inference(_record("a", "s", 0, "LL"))
    assert not wants_inference(_record("a", "s", 0, "RAO"))


def test_study_is_stable_only_after_quiet_period_since_last_instance() -> None:
    records = [_record("a", "s", 100.0), _record("b", "s", 105.0)]
    assert not is_stable(records, now=109.9, stable_seconds=5)
    assert is_stable(records, now=110.0, stable_seconds=5)
    assert is_stable(records, now=105.0, stable_seconds=0)


def test_group_by_study() -> None:
    groups = group_by_study([_record("a", "s1", 0), _record("b", "s2", 0), _record("c", "s1", 0)])
    assert {study: [r.key for r in records] for study, records in groups.items()} == {
        "s1": ["a", "c"],
        "s2": ["b"],
    }
