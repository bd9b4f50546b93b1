"""Does a finding's score follow the finding, or the collection a film came from?

Why: the default model pretrains on several small collections whose label rates differ wildly (JSRT
films are 61 % nodules, NIH films 5 %). A query can then learn the collection instead of the finding:
the shipped model scores every JSRT film about 0.58 for `nodule`, with or without one, and every NIH
film about 0.09 (docs/training.md). Pooled over sources such a score still looks useful (pooled nodule
AUROC 0.69 against 0.35 on NIH alone), so the evaluation reports, per finding labelled in two or more
sources, how far the score moves between sources on films WITHOUT the finding against how far the
finding itself moves it within a source.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from training.metrics.classification import auroc, finite_mean

__all__ = ["source_dependence"]

Pairs = Sequence[tuple[int, float]]  # (label 0/1, score) per film


def _separation(higher: Sequence[float], lower: Sequence[float]) -> float:
    """2 x AUROC - 1 of `higher` against `lower`: 1 when every score of `higher` ranks above every score of
    `lower`, 0 when the scores do not tell them apart, -1 when they rank the wrong way."""
    labels = [1] * len(higher) + [0] * len(lower)
    return 2.0 * auroc(labels, [*higher, *lower]) - 1.0


def source_dependence(scores: Mapping[str, Mapping[str, Pairs]]) -> dict[str, dict[str, Any]]:
    """{source: {finding: [(label, score)]}} -> per finding labelled in >= 2 sources:

    - `sources`: per source, films with and without the finding and their mean scores;
    - `between_sources`: max - min over sources of the mean score of films WITHOUT the finding (what the
      source alone does to the score);
    - `within_sources`: mean over sources with both kinds of films of (mean with - mean without) (what
      the finding does to the score; negative when the score points the wrong way);
    - `between_sources_rank`: the largest |2 x AUROC - 1| with which the score tells the films WITHOUT
      the finding of one source from those of another (0: not at all, 1: perfectly);
    - `within_sources_rank`: mean over sources with both kinds of films of 2 x AUROC - 1 of the finding;
    - `source_dominated`: `between_sources_rank` exceeds `within_sources_rank`: the score ranks films by
      the collection they came from more cleanly than by the finding.

    Why the verdict uses ranks: mean gaps shrink with the scores, so a query whose scores are all near
    zero had tiny gaps either way and was flagged by noise; ranks do not change with the score's scale.
    """
    by_finding: dict[str, dict[str, Pairs]] = {}
    for source, findings in scores.items():
        for name, pairs in findings.items():
            by_finding.setdefault(name, {})[source] = pairs
    report: dict[str, dict[str, Any]] = {}
    for name, sources in sorted(by_finding.items()):
        if len(sources) < 2:
            continue
        rows: dict[str, dict[str, Any]] = {}
        negative_means: list[float] = []
        gaps: list[float] = []
        negatives: list[list[float]] = []
        rank_gaps: list[float] = []
        for source, pairs in sorted(sources.items()):
            positive = [score for label, score in pairs if label == 1]
            negative = [score for label, score in pairs if label == 0]
            mean_positive, mean_negative = finite_mean(positive), finite_mean(negative)
            rows[source] = {"n_positive": len(positive), "n_negative": len(negative),
                            "mean_score_positive": mean_positive, "mean_score_negative": mean_negative}
            if mean_negative is not None:
                negative_means.append(mean_negative)
                negatives.append(negative)
            if mean_positive is not None and mean_negative is not None:
                gaps.append(mean_positive - mean_negative)
                rank_gaps.append(_separation(positive, negative))
        source_pairs = list(itertools.combinations(negatives, 2))
        between_rank = max(abs(_separation(a, b)) for a, b in source_pairs) if source_pairs else None
        within_rank = float(np.mean(rank_gaps)) if rank_gaps else None
        report[name] = {
            "sources": rows,
            "between_sources": (max(negative_means) - min(negative_means)) if len(negative_means) >= 2
            else None,
            "within_sources": float(np.mean(gaps)) if gaps else None,
            "between_sources_rank": between_rank,
            "within_sources_rank": within_rank,
            "source_dominated": None if between_rank is None or within_rank is None
            else bool(between_rank > within_rank),
        }
    return report
