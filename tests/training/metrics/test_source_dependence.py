"""source_dependence: a score that follows the collection is flagged, one that follows the finding is not."""

from __future__ import annotations

import pytest

from training.metrics.source_dependence import source_dependence


def _pairs(positive: list[float], negative: list[float]) -> list[tuple[int, float]]:
    return [(1, s) for s in positive] + [(0, s) for s in negative]


def test_a_score_that_names_the_collection_is_source_dominated() -> None:
    """As the shipped `nodule` query: high on every film of one collection, low on every other film."""
    scores = {
        "jsrt": {"nodule": _pairs([0.60, 0.58], [0.59, 0.57])},
        "nih": {"nodule": _pairs([0.08, 0.10], [0.09, 0.11])},
    }
    report = source_dependence(scores)["nodule"]
    assert report["between_sources"] == pytest.approx(0.48)
    assert report["within_sources"] == pytest.approx(0.0, abs=1e-9)  # +0.01 in one source, -0.01 in the other
    assert report["between_sources_rank"] == pytest.approx(1.0)  # every JSRT film above every NIH film
    assert report["within_sources_rank"] == pytest.approx(0.0)  # AUROC 0.75 in one source, 0.25 in the other
    assert report["source_dominated"] is True
    assert report["sources"]["jsrt"] == {
        "n_positive": 2, "n_negative": 2, "mean_score_positive": pytest.approx(0.59),
        "mean_score_negative": pytest.approx(0.58),
    }


def test_a_score_that_follows_the_finding_is_not() -> None:
    scores = {
        "kermany": {"pneumonia": _pairs([0.9, 0.8], [0.1, 0.2])},
        "covid": {"pneumonia": _pairs([0.7], [0.2, 0.3])},
    }
    report = source_dependence(scores)["pneumonia"]
    assert report["between_sources"] == pytest.approx(0.1)
    assert report["within_sources"] == pytest.approx((0.7 + 0.45) / 2)
    assert report["source_dominated"] is False


def test_a_wrong_way_score_counts_against_the_finding() -> None:
    """Positives scored below negatives within each source: the finding gap is negative."""
    scores = {"a": {"mass": _pairs([0.2], [0.4])}, "b": {"mass": _pairs([0.3], [0.5])}}
    report = source_dependence(scores)["mass"]
    assert report["within_sources"] == pytest.approx(-0.2)
    assert report["source_dominated"] is True


def test_findings_of_one_source_and_one_class_sources() -> None:
    scores = {
        "nih": {"hernia": _pairs([0.4], [0.1]), "normal": _pairs([0.7], [0.5])},
        "covid": {"normal": _pairs([], [0.45])},  # no normal film here: no finding gap from this source
    }
    report = source_dependence(scores)
    assert "hernia" not in report  # labelled in one source only
    normal = report["normal"]
    assert normal["sources"]["covid"]["mean_score_positive"] is None
    assert normal["between_sources"] == pytest.approx(0.05)
    assert normal["within_sources"] == pytest.approx(0.2)
    assert normal["source_dominated"] is False


def test_no_verdict_without_two_sources_with_negatives() -> None:
    scores = {"a": {"edema": _pairs([0.9], [])}, "b": {"edema": _pairs([0.8], [0.2])}}
    report = source_dependence(scores)["edema"]
    assert report["between_sources"] is None and report["source_dominated"] is None


def test_scores_near_zero_are_judged_by_ranks_not_by_mean_gaps() -> None:
    """All scores below 0.05: the collections' means differ by more than the finding's, but within each
    collection the finding ranks every film, and the collections overlap: not source-dominated."""
    scores = {
        "a": {"nodule": _pairs([0.031], [0.010, 0.030])},
        "b": {"nodule": _pairs([0.046], [0.025, 0.045])},
    }
    report = source_dependence(scores)["nodule"]
    assert report["between_sources"] > report["within_sources"]  # what a mean-gap verdict would flag
    assert report["between_sources_rank"] == pytest.approx(0.5)
    assert report["within_sources_rank"] == pytest.approx(1.0)
    assert report["source_dominated"] is False
