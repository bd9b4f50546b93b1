"""The view rule shared by the service's header check and the PACS bridge."""

from __future__ import annotations

import pytest

from app.contract.vocabulary import ViewKind, view_kind


@pytest.mark.parametrize(
    ("view", "kind"),
    [
        ("PA", ViewKind.FRONTAL),
        (" ap ", ViewKind.FRONTAL),
        ("AP SUPINE", ViewKind.FRONTAL),
        ("LL", ViewKind.LATERAL),
        ("RLAT", ViewKind.LATERAL),
        ("LEFT LATERAL", ViewKind.LATERAL),
        ("LATEROMEDIAL", ViewKind.LATERAL),
        ("RAO", ViewKind.OBLIQUE),
        ("RIGHT OBLIQUE", ViewKind.OBLIQUE),
        ("LLD", ViewKind.DECUBITUS),
        (None, ViewKind.UNSTATED),
        ("  ", ViewKind.UNSTATED),
    ],
)
def test_view_kind(view: str | None, kind: ViewKind) -> None:
    assert view_kind(view) is kind
