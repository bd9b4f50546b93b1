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


#: NIH ChestX-ray14 label column -> (pathology entity, phrase the parser maps to that entity). Entities
#: follow `app.contract.vocabulary.CXR14_TO_PATHOLOGY` (the released CXR14 evaluation mapping); the
#: phrases are checked by a test to parse to exactly that entity. Fibrosis has no entity of its own: as
#: in MedKLIP/MeDSLIP it is scored by `tail_abnorm_obs` (the long tail of rare observations), and on NIH
#: films that query is taught "fibrosis present/absent" only (NIH labels say nothing of the other rare
#: observations the entity also covers).
NIH_FINDINGS: dict[str, tuple[str, str]] = {
    "atelectasis": ("atelectasis", "atelectasis"),
    "cardiomegaly": ("cardiomegaly", "cardiomegaly"),
    "effusion": ("effusion", "pleural effusion"),
    "infiltration": ("infiltrate", "infiltration"),
    "mass": ("mass", "mass"),
    "nodule": ("nodule", "nodule"),
    "pneumonia": ("pneumonia", "pneumonia"),
    "pneumothorax": ("pneumothorax", "pneumothorax"),
    "consolidation": ("consolidation", "consolidation"),
    "edema": ("edema", "edema"),
    "emphysema": ("emphysema", "emphysema"),
    "fibrosis": ("tail_abnorm_obs", "fibrosis"),
    "pleural_thickening": ("thicken", "pleural thickening"),
    "hernia": ("hernia", "hernia"),
}


def nih_report(labels: dict[str, int]) -> str:
    """Report-like text for the 14 NIH labels (+ `no_finding`): every label is stated, present or absent.

    One short sentence per finding ("No edema.") keeps each negation inside its own sentence, so the
    parser cannot carry a "no" into the next finding. No side, lobe or zone is ever written (the labels
    carry none); only the entity's own anatomy that the parser attaches to the word (effusion -> pleura,
    cardiomegaly -> heart) follows. A film with no finding is also stated "normal" and "clear"; a film
    with any finding is "not normal" (both directions, as for Kermany).
    """
    unknown = set(labels) - set(NIH_FINDINGS) - {"no_finding"}
    if unknown:
        raise ValueError(f"unknown NIH label(s) {sorted(unknown)}")
    present = [phrase for name, (_, phrase) in NIH_FINDINGS.items() if labels.get(name, 0) == 1]
    absent = [phrase for name, (_, phrase) in NIH_FINDINGS.items() if labels.get(name, 0) != 1]
    if present:
        opening = "The radiograph is not normal. " + " ".join(f"There is {p}." for p in present)
    else:
        opening = "Normal chest radiograph. The lungs are clear."
    return " ".join([opening, *(f"No {phrase}." for phrase in absent)])
