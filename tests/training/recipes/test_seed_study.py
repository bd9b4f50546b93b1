"""The seed study: headline figures of a report, their mean and spread, and collapsed queries."""

from __future__ import annotations

from typing import Any

import pytest

from training.recipes.seed_study import NIH_ENTITIES, collapsed_queries, headline, summarise


def _report(nih_auroc: float, normal: float) -> dict[str, Any]:
    def m(auroc: float) -> dict[str, Any]:
        return {"auroc": auroc, "n_pos": 5, "n_neg": 20}

    return {
        "classification": {
            "nih-cxr14": {**{name: m(nih_auroc) for name in NIH_ENTITIES}, "normal": m(normal)},
            "kermany-pediatric": {"pneumonia": m(0.9)},
            "all": {"normal": m(normal)},
        },
        "grounding": {"findings_all_splits": {"all": {"pointing_game": 0.25}}},
        "segmentation": {"heart": {"n": 3, "dice": 0.9}},
    }


def test_headline_reads_the_nih_mean_and_the_named_figures() -> None:
    figures = headline(_report(0.7, 0.8))
    assert figures["nih_mean_auroc_14"] == pytest.approx(0.7)
    assert figures["nih_min_auroc_14"] == pytest.approx(0.7)
    assert figures["kermany_pneumonia_auroc"] == 0.9
    assert figures["pointing_game_all_boxes"] == 0.25
    assert figures["dice_heart"] == 0.9
    assert "jsrt_nodule_auroc" not in figures  # not in the report: left out, not invented


def test_headline_reads_the_within_copy_means_only_over_the_fourteen_findings() -> None:
    report = _report(0.7, 0.8)
    report["origin_dependence"] = {"nih-cxr14": {"mean": {"auroc": 0.7, "within_origin": 0.66,
                                                          "origin_only": 0.68, "n_findings": 14}}}
    figures = headline(report)
    assert figures["nih_within_copy_mean_auroc_14"] == 0.66
    assert figures["nih_copy_only_mean_auroc_14"] == 0.68
    report["origin_dependence"]["nih-cxr14"]["mean"]["n_findings"] = 13  # not the pooled mean's findings
    assert "nih_within_copy_mean_auroc_14" not in headline(report)


def test_summary_gives_mean_sample_sd_and_the_collapsed_queries_per_seed() -> None:
    summary = summarise({1: _report(0.70, 0.8), 2: _report(0.74, 0.3)})
    assert summary["seeds"] == [1, 2]
    assert summary["mean"]["nih_mean_auroc_14"] == pytest.approx(0.72)
    assert summary["sd"]["nih_mean_auroc_14"] == pytest.approx(0.0283, abs=1e-4)
    assert summary["collapsed"] == {"1": [], "2": ["all/normal", "nih-cxr14/normal"]}
    assert collapsed_queries({"classification": {"x": {"y": {"auroc": 0.2, "n_pos": 0, "n_neg": 4}}}}) == []
    assert summarise({1: _report(0.7, 0.8)})["sd"]["nih_mean_auroc_14"] is None
