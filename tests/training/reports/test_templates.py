"""Kermany label templates parse to the findings their label states, and nothing placed by invention."""

import pytest

from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.reports import jsrt_report, kermany_report, parse_report


def _present(text: str) -> set[str]:
    return set(parse_report(text).present_pathologies())


def test_templates_parse_to_their_label() -> None:
    assert _present(kermany_report("Normal")) == {"normal", "clear"}
    normal = parse_report(kermany_report("Normal"))
    for name in ("consolidation", "opacity", "pneumonia", "effusion", "pneumothorax"):
        assert normal.pathology[PATHOLOGY.index(name)] == 0
    for label, expected in (
        ("Bacterial", {"consolidation", "pneumonia"}),
        ("viral-other", {"opacity", "pneumonia"}),
    ):
        assert expected <= _present(kermany_report(label))
        # Both classes of the label set must be seen by the `normal` head, not only its positives.
        assert parse_report(kermany_report(label)).pathology[PATHOLOGY.index("normal")] == 0


def test_bacterial_template_invents_no_lobe_or_side() -> None:
    labels = parse_report(kermany_report("Bacterial"))
    placed = {ANATOMY[i] for i in range(len(ANATOMY)) if labels.anatomy[i] == 1}
    assert placed == {"unspecified"}


def test_unknown_label_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown Kermany label"):
        kermany_report("Tuberculosis")


def test_jsrt_templates_state_the_nodule_label_and_no_pneumonia() -> None:
    normal, nodule = parse_report(jsrt_report(0)), parse_report(jsrt_report(1))
    index = PATHOLOGY.index
    assert normal.pathology[index("normal")] == 1 and normal.pathology[index("nodule")] == 0
    assert nodule.pathology[index("nodule")] == 1
    for labels in (normal, nodule):
        assert labels.pathology[index("pneumonia")] == 0 and labels.pathology[index("consolidation")] == 0
    with pytest.raises(ValueError, match="0 or 1"):
        jsrt_report(2)
