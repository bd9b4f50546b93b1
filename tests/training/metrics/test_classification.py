"""Classification metrics against hand-computed tiny cases."""

import math

import numpy as np
import pytest

from training.metrics.classification import (
    accuracy_at_threshold,
    auroc,
    balanced_threshold,
    classification_metrics,
    max_f1,
    threshold_at_sensitivity,
)


def test_auroc_of_a_perfect_ranking_is_one_and_of_a_reversed_ranking_zero() -> None:
    y = [0, 0, 1, 1]
    assert auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_auroc_counts_pairs_ranked_correctly() -> None:
    # Positives 0.8, 0.3; negatives 0.5, 0.1 -> pairs (0.8>0.5, 0.8>0.1, 0.3<0.5, 0.3>0.1) = 3/4.
    assert auroc([1, 0, 1, 0], [0.8, 0.5, 0.3, 0.1]) == pytest.approx(0.75)


def test_auroc_with_a_single_class_is_nan() -> None:
    assert math.isnan(auroc([1, 1, 1], [0.2, 0.4, 0.6]))


def test_max_f1_picks_the_threshold_that_maximises_f1() -> None:
    # At t=0.8: P=1, R=1/2 -> F1=2/3. At t=0.3: TP=2, FP=1 -> P=2/3, R=1 -> F1=0.8 (best).
    f1, threshold = max_f1([1, 0, 1, 0], [0.8, 0.5, 0.3, 0.1])
    assert f1 == pytest.approx(0.8)
    assert threshold == pytest.approx(0.3)


def test_accuracy_uses_score_at_or_above_threshold_as_positive() -> None:
    assert accuracy_at_threshold([1, 0, 1, 0], [0.8, 0.5, 0.3, 0.1], 0.3) == pytest.approx(0.75)
    assert accuracy_at_threshold([1, 0, 1, 0], [0.8, 0.5, 0.3, 0.1], 0.81) == pytest.approx(0.5)


def test_threshold_at_sensitivity_is_the_highest_threshold_reaching_the_target() -> None:
    y = [1, 0, 1, 0, 1]
    scores = [0.9, 0.7, 0.6, 0.4, 0.2]
    threshold, specificity = threshold_at_sensitivity(y, scores, 0.6)  # 2 of 3 positives
    assert threshold == pytest.approx(0.6)
    assert specificity == pytest.approx(0.5)  # 0.7 is a false positive, 0.4 a true negative
    threshold_all, specificity_all = threshold_at_sensitivity(y, scores, 1.0)
    assert threshold_all == pytest.approx(0.2)
    assert specificity_all == pytest.approx(0.0)


def test_balanced_threshold_ignores_prevalence_where_max_f1_flags_everything() -> None:
    y = [1, 1, 1, 1, 1, 0, 0]  # positive-heavy, like the pneumonia validation splits
    scores = [0.9, 0.8, 0.7, 0.6, 0.2, 0.5, 0.1]
    _, f1_threshold = max_f1(y, scores)
    assert f1_threshold == pytest.approx(0.2)  # 6 of 7 films flagged
    threshold, sensitivity, specificity = balanced_threshold(y, scores)
    assert threshold == pytest.approx(0.6)
    assert (sensitivity, specificity) == (pytest.approx(0.8), pytest.approx(1.0))


def test_balanced_threshold_without_both_classes_is_nan() -> None:
    assert all(math.isnan(v) for v in balanced_threshold([1, 1], [0.2, 0.3]))


def test_classification_metrics_drops_unknown_labels_and_counts_classes() -> None:
    result = classification_metrics("pneumonia", [1, 0, -1, 1, 0], [0.8, 0.5, 0.99, 0.3, 0.1])
    assert (result.n_pos, result.n_neg) == (2, 2)
    assert result.auroc == pytest.approx(0.75)
    assert result.max_f1 == pytest.approx(0.8)
    assert result.sensitivity == pytest.approx(1.0)
    assert result.specificity == pytest.approx(0.5)
    as_json = result.to_dict()
    assert as_json["name"] == "pneumonia" and as_json["threshold"] == pytest.approx(0.3)


def test_classification_metrics_without_positives_reports_none_in_json() -> None:
    result = classification_metrics("effusion", np.zeros(4, dtype=int), [0.1, 0.2, 0.3, 0.4])
    assert result.n_pos == 0
    assert result.to_dict()["auroc"] is None


def test_labels_other_than_binary_are_rejected() -> None:
    with pytest.raises(ValueError, match="0/1"):
        auroc([0, 2, 1], [0.1, 0.2, 0.3])


def test_reliability_of_perfect_and_overconfident_scores() -> None:
    from training.metrics import reliability

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    calibrated = np.full(10, 0.5)  # half the films are positive and every score says 0.5
    ece, table = reliability(labels, calibrated)
    assert ece == pytest.approx(0.0) and table == [(0.5, 0.5, 10)]
    overconfident = np.full(10, 0.95)
    ece, _ = reliability(labels, overconfident)
    assert ece == pytest.approx(0.45)
    assert classification_metrics("x", labels, overconfident).ece == pytest.approx(0.45)
