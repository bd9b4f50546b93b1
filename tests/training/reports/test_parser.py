"""Parser behaviour on sentences quoted from IU reports (Open-i, CC BY-NC-ND 4.0)."""

import numpy as np
import pytest

from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.reports import ReportLabels, parse_report
from training.reports.lexicon import default_lexicon
from training.reports.parser import sentence_mentions


def finding(labels: ReportLabels, name: str) -> int:
    return int(labels.pathology[PATHOLOGY.index(name)])


def cell(labels: ReportLabels, anatomy: str, name: str) -> int:
    return int(labels.matrix[ANATOMY.index(anatomy), PATHOLOGY.index(name)])


def test_shapes_dtypes_and_derived_vectors() -> None:
    labels = parse_report("Small left pleural effusion. No pneumothorax.")
    assert labels.matrix.shape == (51, 75) and labels.matrix.dtype == np.int8
    assert labels.pathology.shape == (75,) and labels.anatomy.shape == (51,)
    assert labels.pathology.dtype == np.int8 and labels.anatomy.dtype == np.int8
    assert cell(labels, "left_pleural", "effusion") == 1
    assert cell(labels, "pleural_unspec", "pneumothorax") == 0
    assert finding(labels, "consolidation") == -1  # not mentioned
    assert labels.anatomy[ANATOMY.index("left_pleural")] == 1
    assert labels.anatomy[ANATOMY.index("pleural_unspec")] == 0  # holds only an absent finding
    assert labels.anatomy[ANATOMY.index("trachea")] == -1


def test_empty_report_is_all_not_mentioned() -> None:
    assert (parse_report("").matrix == -1).all()


def test_negation_over_a_list() -> None:
    labels = parse_report("No displaced rib fractures, pneumothorax, or pleural effusion identified.")
    for name in ("fracture", "pneumothorax", "effusion"):
        assert finding(labels, name) == 0, name
    assert cell(labels, "rib", "fracture") == 0


def test_negation_cues_forward_and_backward() -> None:
    assert finding(parse_report("There is no evidence of pneumothorax."), "pneumothorax") == 0
    assert finding(parse_report("Lungs are free of focal airspace disease."), "disease") == 0
    assert finding(parse_report("The heart is not enlarged."), "cardiomegaly") == 0
    assert finding(parse_report("Previously seen effusion has resolved."), "effusion") == 0
    assert finding(parse_report("A pneumothorax is not seen."), "pneumothorax") == 0
    assert finding(parse_report("No free subdiaphragmatic air."), "air") == 0


def test_negation_wins_over_hedge_in_its_scope() -> None:
    labels = parse_report("There is no focal airspace consolidation to suggest pneumonia.")
    assert finding(labels, "consolidation") == 0
    assert finding(labels, "pneumonia") == 0


def test_but_ends_the_negation_scope() -> None:
    labels = parse_report("No pleural effusion but a small left pneumothorax.")
    assert finding(labels, "effusion") == 0
    assert finding(labels, "pneumothorax") == 1
    assert cell(labels, "left_pleural", "pneumothorax") == 1
    new_clause = parse_report("No pneumothorax and there is a small right effusion.")
    assert finding(new_clause, "pneumothorax") == 0 and cell(new_clause, "right_pleural", "effusion") == 1


def test_uncertainty_policy_is_a_parameter() -> None:
    text = "Left retrocardiac airspace disease could reflect atelectasis."
    assert finding(parse_report(text), "atelectasis") == 1
    assert finding(parse_report(text, uncertain_as=0), "atelectasis") == 0
    assert finding(parse_report(text, uncertain_as=-1), "atelectasis") == -1
    assert finding(parse_report(text, uncertain_as=0), "disease") == 1  # before the hedge: asserted
    with pytest.raises(ValueError, match="uncertain_as"):
        parse_report(text, uncertain_as=2)


def test_cannot_be_excluded_is_uncertain_not_negated() -> None:
    labels = parse_report("Early pneumonia cannot be excluded.", uncertain_as=0)
    assert finding(labels, "pneumonia") == 0
    assert finding(parse_report("Early pneumonia cannot be excluded."), "pneumonia") == 1


def test_laterality_lobes_and_bases() -> None:
    labels = parse_report("Calcified granuloma in the right upper lobe. Patchy left lower lobe infiltrate. "
                          "Opacity at the right base.")
    assert cell(labels, "upper_right_lobe", "calcification") == 1
    assert cell(labels, "unspecified", "calcification") == -1  # "calcified" shares its twin's place
    assert cell(labels, "lower_left_lobe", "infiltrate") == 1
    assert cell(labels, "right_lower_lung", "opacity") == 1


def test_bilateral_phrases_set_both_sides() -> None:
    labels = parse_report("Small bilateral pleural effusions. Opacities in the bilateral upper lobes.")
    assert cell(labels, "left_pleural", "effusion") == 1
    assert cell(labels, "right_pleural", "effusion") == 1
    assert cell(labels, "upper_left_lobe", "opacity") == 1
    assert cell(labels, "upper_right_lobe", "opacity") == 1
    bibasilar = parse_report("XXXX basilar atelectasis. Bibasilar atelectasis.")
    assert cell(bibasilar, "lung_bases", "atelectasis") == 1
    both = parse_report("Right and left lower lobe opacities.")
    assert cell(both, "lower_left_lobe", "opacity") == 1 and cell(both, "lower_right_lobe", "opacity") == 1
    two_lobes = parse_report("Opacities in the left upper and lower lobes.")
    assert cell(two_lobes, "upper_left_lobe", "opacity") == 1
    assert cell(two_lobes, "lower_left_lobe", "opacity") == 1


def test_costophrenic_and_fixed_side_anatomy() -> None:
    labels = parse_report("Blunting of the left costophrenic angle. Catheter tip in the right atrium.")
    assert cell(labels, "left_costophrenic", "blunt") == 1
    assert cell(labels, "right_atrium", "tip") == 1


def test_side_without_region_uses_the_findings_default_region() -> None:
    labels = parse_report("Small left effusion.")
    assert cell(labels, "left_pleural", "effusion") == 1
    assert cell(labels, "pleural_unspec", "effusion") == -1


def test_defaults_when_no_location_is_said() -> None:
    labels = parse_report("Mild cardiomegaly. Small pleural effusion. Degenerative changes.")
    assert cell(labels, "heart_size", "cardiomegaly") == 1
    assert cell(labels, "pleural_unspec", "effusion") == 1
    assert cell(labels, "spine", "degenerative") == 1
    assert cell(parse_report("Mild atelectasis."), "unspecified", "atelectasis") == 1


def test_multiple_findings_in_one_sentence_keep_their_own_places() -> None:
    labels = parse_report("Stable cardiomegaly with small right pleural effusion and left basilar "
                          "atelectasis.")
    assert cell(labels, "heart_size", "cardiomegaly") == 1
    assert cell(labels, "right_pleural", "effusion") == 1
    assert cell(labels, "left_lower_lung", "atelectasis") == 1
    assert cell(labels, "right_pleural", "atelectasis") == -1


def test_report_vocabulary_words() -> None:
    labels = parse_report("The cardiac silhouette and mediastinum size are within normal limits. "
                          "The lungs are clear. Bony structures are intact. No pneumothorax, lungs clear.")
    assert cell(labels, "heart_size", "normal") == 1
    assert cell(labels, "mediastinal", "normal") == 1
    assert cell(labels, "pulmonary", "clear") == 1
    assert finding(labels, "intact") == 1
    assert finding(labels, "pneumothorax") == 0


def test_compounds_reread_words_from_neighbours() -> None:
    assert finding(parse_report("The cardiac silhouette is borderline enlarged."), "cardiomegaly") == 1
    prominent = parse_report("There are prominent diffuse bilateral interstitial opacities.")
    assert finding(prominent, "prominence") == -1 and finding(prominent, "opacity") == 1
    assert finding(parse_report("Cardiomegaly and mild vascular prominence."), "congestion") == 1
    degenerative = parse_report("Minimal degenerative disease thoracic spine.")
    assert finding(degenerative, "disease") == -1 and cell(degenerative, "spine", "degenerative") == 1


def test_granuloma_policy_is_calcification() -> None:
    labels = parse_report("Calcified mediastinal and hilar lymph XXXX are consistent with prior "
                          "granulomatous disease.")
    assert finding(labels, "calcification") == 1
    assert finding(labels, "disease") == -1


def test_sentence_mentions_report_the_sentence() -> None:
    mentions = sentence_mentions("Small T-spine osteophytes", default_lexicon())
    assert [(m.pathology, m.anatomies, m.value) for m in mentions] == [("degenerative", ("spine",), 1)]
