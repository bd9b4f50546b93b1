"""The names every side of the contract spells the same way: one place for each.

- `SEGMENTATION_STRUCTURES`: the structures a bundle may segment, in the segmentation head's channel
  order (training writes them, the service validates `anatomy=`, the bridge codes them in DICOM SEG);
- `INPUT_NAMES`, `OUTPUT_NAMES`: the I/O names of the full image graph (exporter, service, evaluation);
- the view rule (`ViewKind`, `view_kind`, `is_lateral`): what a DICOM View Position says about the
  projection. The model reads frontal (PA/AP) chest radiographs only. The service refuses laterals and
  obliques from the header before decoding; the PACS bridge uses the same rule to decide which
  instances of a study it sends at all, and training and evaluation leave laterals out by it, so no
  two sides can disagree about a view.

The entity vocabularies (pathology and anatomy query names) travel inside each bundle's metadata
(`pathology.names`, `anatomy.names`); their source of truth is `training/model/entities.py`.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "SEGMENTATION_STRUCTURES",
    "ViewKind",
    "is_lateral",
    "view_kind",
]

#: The segmentation structures of the bundle contract (docs/contracts.md), patient's side, in the
#: order of the segmentation head's channels; a bundle may carry a subset, never another name.
SEGMENTATION_STRUCTURES: tuple[str, ...] = (
    "right_lung",
    "left_lung",
    "heart",
    "right_clavicle",
    "left_clavicle",
)

#: Inputs and outputs of the full image graph (`image_model`), in signature order.
INPUT_NAMES: tuple[str, ...] = ("image", "pathology_queries", "anatomy_queries")
OUTPUT_NAMES: tuple[str, ...] = (
    "pathology_probs",
    "pathology_maps",
    "anatomy_probs",
    "anatomy_maps",
    "segmentation_logits",
)

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
