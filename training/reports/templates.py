"""Report-like text for image-level labels (Kermany paediatric pneumonia), so such images can join
image-text pretraining through the same parser as real reports.

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
