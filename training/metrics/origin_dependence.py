"""Does a finding's score rank the films within each public copy of a source, or only tell the copies apart?

Why: a source can merge copies whose label spreads differ. The NIH ChestX-ray14 set here holds one
copy of mostly pneumonia and no-finding films and one that spreads over all 14 labels, so nodules,
masses, fibrosis and hernias sit almost only in the second copy. A score that recognises the copy, by
whatever differs between the two, then ranks those findings well pooled over the copies without seeing
any of them. Beside the pooled AUROC the evaluation therefore reports, per finding:

- `within_origin`: the AUROC over the (positive, negative) pairs of films from the SAME origin, i.e. the
  per-origin AUROCs weighted by their n+ x n- pairs. What the score does where the copy cannot help;
- `origin_only`: the AUROC of the best score that knows nothing but the origin (each film scored by its
  origin's share of positives, taken from the same labels, so an optimistic reference). A pooled AUROC
  near it says little about the finding;
- `origins`: n+, n- and AUROC per origin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from training.metrics.classification import auroc, finite_mean

__all__ = ["origin_dependence", "origin_sections", "origin_summary"]

Pairs = Sequence[tuple[int, float]]  # (label 0/1, score) per film


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def origin_summary(pairs: Pairs, origins: Sequence[str]) -> dict[str, Any]:
    """One finding's pooled, within-origin and origin-only AUROC; `origins` names each pair's origin."""
    if len(pairs) != len(origins):
        raise ValueError(f"{len(pairs)} scored films but {len(origins)} origins")
    labels = [label for label, _ in pairs]
    groups: dict[str, list[tuple[int, float]]] = {}
    for pair, origin in zip(pairs, origins, strict=True):
        groups.setdefault(origin, []).append(pair)
    rows: dict[str, dict[str, Any]] = {}
    weighted, weights = 0.0, 0
    share: dict[str, float] = {}
    for origin, members in sorted(groups.items()):
        n_positive = sum(label for label, _ in members)
        n_negative = len(members) - n_positive
        value = auroc([label for label, _ in members], [score for _, score in members])
        rows[origin] = {"n_positive": n_positive, "n_negative": n_negative, "auroc": _finite(value)}
        share[origin] = n_positive / len(members)
        if not math.isnan(value):
            weighted += value * n_positive * n_negative
            weights += n_positive * n_negative
    return {
        "auroc": _finite(auroc(labels, [score for _, score in pairs])),
        "within_origin": weighted / weights if weights else None,
        "origin_only": _finite(auroc(labels, [share[origin] for origin in origins])),
        "origins": rows,
    }


def origin_dependence(scores: Mapping[str, Pairs], origins: Mapping[str, Sequence[str]],
                      means_over: Sequence[str] = ()) -> dict[str, Any] | None:
    """{finding: pairs}, {finding: origins} of one source -> per finding `origin_summary`, and the means
    of its three AUROCs over `means_over` (the findings a headline averages; every finding when empty).
    None when the source's films come from fewer than two origins: there is nothing to separate."""
    if len({origin for names in origins.values() for origin in names}) < 2:
        return None
    findings = {name: origin_summary(pairs, origins[name]) for name, pairs in sorted(scores.items())}
    chosen = [name for name in (means_over or findings) if name in findings]
    means = {key: finite_mean([findings[name][key] for name in chosen
                               if findings[name][key] is not None])
             for key in ("auroc", "within_origin", "origin_only")}
    return {"findings": findings, "mean": {**means, "n_findings": len(chosen)}}


def origin_sections(scores: Mapping[str, Mapping[str, Pairs]],
                    origins: Mapping[str, Mapping[str, Sequence[str]]],
                    leave_out: Sequence[str] = ("normal",)) -> dict[str, Any]:
    """{source: {finding: pairs}}, {source: {finding: origins}} -> `origin_dependence` of every source whose
    films come from two or more origins, its means over every finding but `leave_out` (`normal` names no
    finding: for NIH the means run over the 14 findings, as the pooled headline does)."""
    sections = {}
    for source, findings in sorted(scores.items()):
        chosen = [name for name in sorted(findings) if name not in leave_out]
        section = origin_dependence(findings, origins.get(source, {}), means_over=chosen)
        if section is not None:
            sections[source] = section
    return sections
