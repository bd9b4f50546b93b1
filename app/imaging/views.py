"""What a DICOM View Position says about the projection: the one rule the service and the bridge share.

The model reads frontal (PA/AP) chest radiographs only. The service refuses laterals and obliques from
the header before decoding; the PACS bridge uses the same rule to decide which instances of a study it
sends at all, so the two can never disagree about a view.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["ViewKind", "is_lateral", "view_kind"]

# View Position defined terms (PS3.3 C.8.11.5.1.1) plus common non-standard spellings.
_LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT", "L"})
_OBLIQUE_VIEWS = frozenset({"RLO", "LLO", "RAO", "LAO", "RPO", "LPO", "OBL", "OBLIQUE"})
_DECUBITUS_VIEWS = frozenset({"RLD", "LLD"})


class ViewKind(StrEnum):
    FRONTAL = "frontal"  # PA, AP and any term that names no other projection (assumed frontal)
    UNSTATED = "unstated"  # no View Position in the header
    LATERAL = "lateral"
    OBLIQUE = "oblique"
    DECUBITUS = "decubitus"  # a frontal projection with the patient lying on one side


def view_kind(view: str | None) -> ViewKind:
    """Classify a View Position (or View Code Sequence meaning); case and padding are ignored."""
    if view is None or not view.strip():
        return ViewKind.UNSTATED
    view = view.strip().upper()
    words = set(re.split(r"[^A-Z]+", view)) - {""}
    if view in _LATERAL_VIEWS or "LATERAL" in words or "LATERO" in view or "MEDIO" in view:
        return ViewKind.LATERAL
    if view in _OBLIQUE_VIEWS or "OBLIQUE" in words:
        return ViewKind.OBLIQUE
    if view in _DECUBITUS_VIEWS or "DECUBITUS" in words:
        return ViewKind.DECUBITUS
    return ViewKind.FRONTAL


def is_lateral(view: str | None) -> bool:
    """Whether a View Position names a lateral projection: the films training and evaluation leave out
    and the service refuses, by the same rule."""
    return view_kind(view) == ViewKind.LATERAL
