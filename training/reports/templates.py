"""Report-like text for image-level labels (Kermany paediatric pneumonia), so such images can join
image-text pretraining through the same parser as real reports.

The templates say only what the label says. Kermany labels carry no location, so no lobe or side is
invented; the one descriptive choice is the radiographic pattern that defines each class in the source
paper (bacterial: focal lobar consolidation; viral: diffuse bilateral interstitial pattern).
"""

from __future__ import annotations

KERMANY_TEMPLATES: dict[str, str] = {
    "Normal": "The lungs are clear. No focal consolidation, effusion or pneumothorax.",
    "Bacterial": "Focal consolidation consistent with bacterial pneumonia.",
    "Viral-Other": "Diffuse bilateral interstitial opacities consistent with viral pneumonia.",
}


def kermany_report(label: str) -> str:
    """Template sentence(s) for a Kermany label (Normal / Bacterial / Viral-Other); case-insensitive."""
    by_lower = {name.lower(): text for name, text in KERMANY_TEMPLATES.items()}
    try:
        return by_lower[label.strip().lower()]
    except KeyError:
        expected = sorted(KERMANY_TEMPLATES)
        raise ValueError(f"unknown Kermany label {label!r}; expected one of {expected}") from None
