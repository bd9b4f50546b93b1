"""The names every side of the contract spells the same way: one place for each.

- `SEGMENTATION_STRUCTURES`: the structures a bundle may segment, in the segmentation head's channel
  order (training writes them, the service validates `anatomy=`, the bridge codes them in DICOM SEG);
- `INPUT_NAMES`, `OUTPUT_NAMES`: the I/O names of the full image graph (exporter, service, evaluation);
- the view rule (`ViewKind`, `view_kind`, `is_lateral`): what a DICOM View Position says about the
  projection. The model reads frontal (PA/AP) chest radiographs only. The service refuses laterals and
  obliques from the header before decoding; the PACS bridge uses the same rule to decide which
  instances of a study it sends at all, and training and evaluation leave laterals out by it, so no
  two sides can disagree about a view.

- the entity vocabularies of MeDSLIP (`PATHOLOGY`, `ANATOMY`), in the query order of the released
  checkpoint: index i of PATHOLOGY is query i of the pathology stream, index j of ANATOMY is query j of
  the anatomy stream (the released code spells two names differently; these are the intended words),
  and the NIH ChestX-ray14 class -> pathology entity map (`CXR14_TO_PATHOLOGY`). Training builds its
  queries from them; every bundle carries the names it was exported with (`pathology.names`,
  `anatomy.names`), which the service reads.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "ANATOMY",
    "CXR14_TO_PATHOLOGY",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "PATHOLOGY",
    "SEGMENTATION_STRUCTURES",
    "ViewKind",
    "is_lateral",
    "view_kind",
]

PATHOLOGY: tuple[str, ...] = (
    "normal", "clear", "sharp", "sharply", "unremarkable", "intact", "stable", "free", "effusion",
    "opacity", "pneumothorax", "edema", "atelectasis", "tube", "consolidation", "process",
    "abnormality", "enlarge", "tip", "low", "pneumonia", "line", "congestion", "catheter",
    "cardiomegaly", "fracture", "air", "tortuous", "lead", "disease", "calcification",
    "prominence", "device", "engorgement", "picc", "clip", "elevation", "expand", "nodule", "wire",
    "fluid", "degenerative", "pacemaker", "thicken", "marking", "scar", "hyperinflate", "blunt",
    "loss", "widen", "collapse", "density", "emphysema", "aerate", "mass", "crowd", "infiltrate",
    "obscure", "deformity", "hernia", "drainage", "distention", "shift", "stent", "pressure",
    "lesion", "finding", "borderline", "hardware", "dilation", "chf", "redistribution",
    "aspiration", "tail_abnorm_obs", "excluded_obs",
)

ANATOMY: tuple[str, ...] = (
    "trachea", "left_hilar", "right_hilar", "hilar_unspec", "left_pleural", "right_pleural",
    "pleural_unspec", "heart_size", "heart_border", "left_diaphragm", "right_diaphragm",
    "diaphragm_unspec", "retrocardiac", "lower_left_lobe", "upper_left_lobe", "lower_right_lobe",
    "middle_right_lobe", "upper_right_lobe", "left_lower_lung", "left_mid_lung", "left_upper_lung",
    "left_apical_lung", "left_lung_unspec", "right_lower_lung", "right_mid_lung",
    "right_upper_lung", "right_apical_lung", "right_lung_unspec", "lung_apices", "lung_bases",
    "left_costophrenic", "right_costophrenic", "costophrenic_unspec", "cardiophrenic_sulcus",
    "mediastinal", "spine", "clavicle", "rib", "stomach", "right_atrium", "right_ventricle",
    "aorta", "svc", "interstitium", "parenchymal", "cavoatrial_junction", "cardiopulmonary",
    "pulmonary", "lung_volumes", "unspecified", "other",
)

#: NIH ChestX-ray14 class -> pathology entity, for zero-shot evaluation on CXR14-style labels.
CXR14_TO_PATHOLOGY: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "infiltrate",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Fibrosis": "tail_abnorm_obs",
    "Pleural_Thickening": "thicken",
    "Hernia": "hernia",
}

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
