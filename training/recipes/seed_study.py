"""Headline figures of one evaluation report, and their spread over the seeds of one recipe.

A from-scratch recipe on ~2,300 films is only as good as its worst seed: one rebuild of an earlier
recipe collapsed the `normal` query (AUROC 0.29) while the shipped seed scored 0.96. So the default model
is trained with several seeds, each evaluated the same way, and the card reports mean +- sd of every
headline figure plus the worst query of every seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from training.reports.templates import NIH_FINDINGS

NIH = "nih-cxr14"
#: The 14 NIH findings as the pathology entities that score them (fibrosis -> tail_abnorm_obs).
NIH_ENTITIES: tuple[str, ...] = tuple(entity for entity, _ in NIH_FINDINGS.values())
#: An AUROC at or below this on a query with validation labels counts as a collapsed query.
COLLAPSE_AUROC = 0.5


def _auroc(report: Mapping[str, Any], source: str, name: str) -> float | None:
    value = report.get("classification", {}).get(source, {}).get(name, {}).get("auroc")
    return None if value is None else float(value)


def headline(report: Mapping[str, Any]) -> dict[str, float]:
    """The figures the card leads with, by name; a figure the report cannot give is left out."""
    figures: dict[str, float] = {}
    nih = [_auroc(report, NIH, name) for name in NIH_ENTITIES]
    if nih and all(value is not None for value in nih):
        values = [float(v) for v in nih if v is not None]
        figures["nih_mean_auroc_14"] = statistics.fmean(values)
        figures["nih_min_auroc_14"] = min(values)
        for name, value in zip(NIH_ENTITIES, values, strict=True):
            figures[f"nih_auroc_{name}"] = value
    copies = report.get("origin_dependence", {}).get(NIH, {}).get("mean", {})
    if copies.get("n_findings") == len(NIH_ENTITIES):  # the pooled mean's 14 findings, ranked per copy
        for key, name in (("nih_within_copy_mean_auroc_14", "within_origin"),
                          ("nih_copy_only_mean_auroc_14", "origin_only")):
            if copies.get(name) is not None:
                figures[key] = float(copies[name])
    for key, source, name in (
        ("nih_auroc_normal", NIH, "normal"),
        ("kermany_pneumonia_auroc", "kermany-pediatric", "pneumonia"),
        ("jsrt_nodule_auroc", "jsrt-scr", "nodule"),
        ("pooled_normal_auroc", "all", "normal"),
        ("pooled_pneumonia_auroc", "all", "pneumonia"),
    ):
        auroc = _auroc(report, source, name)
        if auroc is not None:
            figures[key] = auroc
    grounding = report.get("grounding", {})
    sections = (("pointing_game_val_boxes", "findings"), ("pointing_game_all_boxes", "findings_all_splits"))
    for key, section in sections:
        value = grounding.get(section, {}).get("all", {}).get("pointing_game")
        if value is not None:
            figures[key] = float(value)
    for name, m in report.get("segmentation", {}).items():
        if isinstance(m, dict) and m.get("dice") is not None:
            figures[f"dice_{name}"] = float(m["dice"])
    return figures


def collapsed_queries(report: Mapping[str, Any]) -> list[str]:
    """`source/finding` of every labelled query at or below chance (ranks no better than a coin)."""
    found = []
    for source, findings in report.get("classification", {}).items():
        for name, m in findings.items():
            value = m.get("auroc")
            both = m.get("n_pos", 0) > 0 and m.get("n_neg", 0) > 0
            if value is not None and both and value <= COLLAPSE_AUROC:
                found.append(f"{source}/{name}")
    return sorted(found)


def summarise(reports: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """seed -> report  ->  {"seeds", "per_seed": {seed: figures}, "mean", "sd", "collapsed": {seed: [...]}}.

    sd is the sample standard deviation (n - 1); None with a single seed."""
    per_seed = {int(seed): headline(report) for seed, report in sorted(reports.items())}
    names = sorted(set.intersection(*(set(f) for f in per_seed.values()))) if per_seed else []
    mean = {name: statistics.fmean(f[name] for f in per_seed.values()) for name in names}
    sd: dict[str, float | None] = {
        name: statistics.stdev(f[name] for f in per_seed.values()) if len(per_seed) > 1 else None
        for name in names
    }
    return {
        "seeds": list(per_seed),
        "per_seed": {str(seed): figures for seed, figures in per_seed.items()},
        "mean": mean,
        "sd": sd,
        "collapsed": {str(seed): collapsed_queries(report) for seed, report in sorted(reports.items())},
    }
