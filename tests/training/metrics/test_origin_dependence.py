"""origin_dependence: a score that only knows the copy ranks well pooled and at chance within each copy."""

from __future__ import annotations

import pytest

from training.metrics.origin_dependence import origin_dependence, origin_sections, origin_summary

# Two copies: "a" holds 1 positive in 4 films, "b" 3 in 4 (as NIH's nodules sit in one copy).
LABELS = [1, 0, 0, 0, 1, 1, 1, 0]
ORIGINS = ["a"] * 4 + ["b"] * 4


def _pairs(scores: list[float]) -> list[tuple[int, float]]:
    return list(zip(LABELS, scores, strict=True))


def test_a_score_that_knows_only_the_copy_is_at_chance_within_each_copy() -> None:
    copy_score = [0.2] * 4 + [0.8] * 4  # constant within a copy
    summary = origin_summary(_pairs(copy_score), ORIGINS)
    assert summary["auroc"] == pytest.approx(0.75)  # pooled: looks useful
    assert summary["within_origin"] == pytest.approx(0.5)  # ties everywhere inside a copy
    assert summary["origin_only"] == pytest.approx(summary["auroc"])  # nothing beyond the copy
    assert summary["origins"] == {
        "a": {"n_positive": 1, "n_negative": 3, "auroc": pytest.approx(0.5)},
        "b": {"n_positive": 3, "n_negative": 1, "auroc": pytest.approx(0.5)},
    }


def test_within_origin_weights_each_copy_by_its_pairs() -> None:
    # copy a: the positive ranks above every negative (1.0, 3 pairs);
    # copy b: every positive ranks below the negative (0.0, 3 pairs) -> (3 x 1.0 + 3 x 0.0) / 6
    scores = [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    summary = origin_summary(_pairs(scores), ORIGINS)
    assert summary["origins"]["a"]["auroc"] == pytest.approx(1.0)
    assert summary["origins"]["b"]["auroc"] == pytest.approx(0.0)
    assert summary["within_origin"] == pytest.approx(0.5)


def test_a_copy_with_one_class_only_adds_no_pairs() -> None:
    labels = [1, 0, 0, 0, 0, 0]
    origins = ["a", "a", "a", "b", "b", "b"]
    summary = origin_summary(list(zip(labels, [0.9, 0.1, 0.2, 0.5, 0.6, 0.7], strict=True)), origins)
    assert summary["origins"]["b"] == {"n_positive": 0, "n_negative": 3, "auroc": None}
    assert summary["within_origin"] == pytest.approx(1.0)  # copy a's pairs only


def test_a_source_of_one_origin_has_nothing_to_separate() -> None:
    assert origin_dependence({"nodule": _pairs([0.5] * 8)}, {"nodule": ["x"] * 8}) is None


def test_means_run_over_the_named_findings_only() -> None:
    scores = {"nodule": _pairs([0.2] * 4 + [0.8] * 4),
              "normal": _pairs([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])}
    origins = {name: ORIGINS for name in scores}
    report = origin_dependence(scores, origins, means_over=["nodule"])
    assert report is not None
    assert set(report["findings"]) == {"nodule", "normal"}
    assert report["mean"] == {"auroc": pytest.approx(0.75), "within_origin": pytest.approx(0.5),
                              "origin_only": pytest.approx(0.75), "n_findings": 1}


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="8 scored films but 7 origins"):
        origin_summary(_pairs([0.5] * 8), ORIGINS[:-1])


def test_sections_cover_the_merged_sources_and_leave_normal_out_of_the_means() -> None:
    merged = {"nodule": _pairs([0.2] * 4 + [0.8] * 4), "normal": _pairs([0.5] * 8)}
    scores = {"nih": merged, "jsrt": {"nodule": _pairs([0.5] * 8)}}
    origins = {"nih": {name: ORIGINS for name in merged}, "jsrt": {"nodule": [""] * 8}}
    sections = origin_sections(scores, origins)
    assert set(sections) == {"nih"}  # one collection: nothing to separate
    assert sections["nih"]["mean"]["n_findings"] == 1
    assert set(sections["nih"]["findings"]) == {"nodule", "normal"}
