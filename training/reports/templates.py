"""Report-like text for image-level labels (Kermany paediatric pneumonia, JSRT nodules), so such images
can join image-text pretraining through the same parser as real reports.

The templates say only what the label says. Kermany labels carry no location, so no lobe or side is
invented; the one descriptive choice is the radiographic pattern that defines each class in the source
paper (bacterial: focal lobar consolidation; viral: diffuse bilateral interstitial pattern).

Each label is stated in both directions (a normal film explicitly negates pneumonia, consolidation and
opacity; a pneumonia film explicitly is "not normal"). Without that, the existence heads of `normal` and
`pneumonia` only ever saw one class from this set and learned a constant (measured: pneumonia-vs-normal
AUROC 0.31 on the Kermany validation split after the first pretraining run).
"""

from __future__ import annotations

KERMANY_TEMPLATES: dict[str, str] = {
    "Normal": (
        "Normal chest radiograph. The lungs are clear. "
        "No focal consolidation, opacity, pneumonia, effusion or pneumothorax."
    ),
    "Bacterial": (
        "The radiograph is not normal. Focal consolidation and opacity consistent with bacterial pneumonia."
    ),
    "Viral-Other": (
        "The radiograph is not normal. "
        "Diffuse bilateral interstitial opacities consistent with viral pneumonia."
    ),
}


def kermany_report(label: str) -> str:
    """Template sentence(s) for a Kermany label (Normal / Bacterial / Viral-Other); case-insensitive."""
    by_lower = {name.lower(): text for name, text in KERMANY_TEMPLATES.items()}
    try:
        return by_lower[label.strip().lower()]
    except KeyError:
        expected = sorted(KERMANY_TEMPLATES)
        raise ValueError(f"unknown Kermany label {label!r}; expected one of {expected}") from None


#: JSRT is a lung-nodule database: every film is an adult PA radiograph, with (1) or without (0) a
#: nodule, and no other finding was selected for. Its report states only that.
JSRT_TEMPLATES: dict[int, str] = {
    0: "Normal chest radiograph. The lungs are clear. No nodule, focal consolidation, opacity or pneumonia.",
    1: "There is a pulmonary nodule. No focal consolidation or pneumonia.",
}


def jsrt_report(nodule: int) -> str:
    """Template sentence(s) for a JSRT film: adult frontal films that teach the model adult normals."""
    try:
        return JSRT_TEMPLATES[int(nodule)]
    except (KeyError, ValueError):
        raise ValueError(f"JSRT nodule label must be 0 or 1, got {nodule!r}") from None
