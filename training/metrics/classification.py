"""Zero-shot classification metrics per finding: AUROC, max-F1 and the operating points the service uses.

Two operating points are reported: max-F1 (depends on prevalence: on a split with many positives it
drifts to a very low threshold that flags almost everything) and the balanced one, Youden's J = max of
sensitivity + specificity - 1 (prevalence-free), which `training.export.bundle` ships as the service default.

A score is "positive" when ``score >= threshold``; every threshold returned here follows that rule, so
the service can apply ``metadata.json`` operating points without re-deriving anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve


def finite_mean(values: Sequence[float]) -> float | None:
    """Mean of the values that are not NaN; None when none is (an empty group is not a zero)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


@dataclass(frozen=True)
class ClassMetrics:
    """Every figure reported for one finding (NaN where a class is missing, so it cannot be computed)."""

    name: str
    n_pos: int
    n_neg: int
    auroc: float
    max_f1: float
    threshold: float  # at max-F1
    accuracy: float  # at that threshold
    sensitivity: float  # at that threshold
    specificity: float  # at that threshold
    target_sensitivity: float
    threshold_at_target_sensitivity: float
    specificity_at_target_sensitivity: float
    balanced_threshold: float  # Youden's J: the operating point the exported bundle uses
    balanced_sensitivity: float  # at that threshold
    balanced_specificity: float  # at that threshold
    ece: float  # expected calibration error over RELIABILITY_BINS equal-width score bins

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN becomes None because JSON has no NaN."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _as_binary(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (drop unknown labels before calling)")
    return y, s


def _has_both_classes(y: NDArray[np.int64]) -> bool:
    return bool(y.any()) and not bool(y.all())


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random negative
    (ties count one half). NaN when only one class is present, because the quantity is undefined."""
    y, s = _as_binary(y_true, scores)
    if not _has_both_classes(y):
        return math.nan
    return float(roc_auc_score(y, s))


def max_f1(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Best F1 = 2PR/(P+R) over every threshold; returns (f1, threshold), predicted positive when
    ``score >= threshold``. (NaN, NaN) without positives, because F1 is then meaningless."""
    y, s = _as_binary(y_true, scores)
    if not y.any():
        return math.nan, math.nan
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last (precision=1, recall=0) point has no threshold.
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def accuracy_at_threshold(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> float:
    """Fraction of correct decisions when predicting positive at ``score >= threshold``."""
    y, s = _as_binary(y_true, scores)
    if y.size == 0 or math.isnan(threshold):
        return math.nan
    return float(np.mean((s >= threshold).astype(np.int64) == y))


def sensitivity_specificity(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> tuple[float, float]:
    """(TP / P, TN / N) at ``score >= threshold``; NaN for a class that is absent."""
    y, s = _as_binary(y_true, scores)
    predicted = s >= threshold
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    sens = float((predicted & (y == 1)).sum() / n_pos) if n_pos else math.nan
    spec = float((~predicted & (y == 0)).sum() / n_neg) if n_neg else math.nan
    return sens, spec


def threshold_at_sensitivity(y_true: ArrayLike, scores: ArrayLike, target: float) -> tuple[float, float]:
    """Highest threshold whose sensitivity reaches ``target`` (a screening operating point), with the
    specificity obtained there: (threshold, specificity). NaN without both classes."""
    y, s = _as_binary(y_true, scores)
    if not _has_both_classes(y):
        return math.nan, math.nan
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    reached = np.flatnonzero(tpr >= target)
    index = int(reached[0])
    threshold = float(thresholds[index])
    if math.isinf(threshold):  # target 0: the "predict nothing" point; use the top score instead
        threshold = float(s.max())
    return threshold, float(1.0 - fpr[index])


def balanced_threshold(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float, float]:
    """Threshold maximising Youden's J = sensitivity + specificity - 1, with (threshold, sensitivity,
    specificity) there. Ties go to the highest threshold (fewest positives). NaN without both classes."""
    y, s = _as_binary(y_true, scores)
    if not _has_both_classes(y):
        return math.nan, math.nan, math.nan
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # the first ROC point (inf) predicts nothing
    j = np.where(finite, tpr - fpr, -np.inf)
    best = int(np.argmax(j))  # thresholds decrease along the curve: first maximum = highest threshold
    return float(thresholds[best]), float(tpr[best]), float(1.0 - fpr[best])


def classification_metrics(
    name: str, y_true: ArrayLike, scores: ArrayLike, target_sensitivity: float = 0.9
) -> ClassMetrics:
    """All figures for one finding. Labels of -1 (unknown) are dropped before anything is computed."""
    y_all = np.asarray(y_true).ravel()
    s_all = np.asarray(scores, dtype=np.float64).ravel()
    known = y_all >= 0
    y, s = _as_binary(y_all[known], s_all[known])
    f1, threshold = max_f1(y, s)
    sens, spec = sensitivity_specificity(y, s, threshold) if not math.isnan(threshold) else (math.nan,) * 2
    t_sens, spec_at_sens = threshold_at_sensitivity(y, s, target_sensitivity)
    b_threshold, b_sens, b_spec = balanced_threshold(y, s)
    ece, _ = reliability(y, s)
    return ClassMetrics(
        name=name,
        n_pos=int(y.sum()),
        n_neg=int((1 - y).sum()),
        auroc=auroc(y, s),
        max_f1=f1,
        threshold=threshold,
        accuracy=accuracy_at_threshold(y, s, threshold),
        sensitivity=sens,
        specificity=spec,
        target_sensitivity=target_sensitivity,
        threshold_at_target_sensitivity=t_sens,
        specificity_at_target_sensitivity=spec_at_sens,
        balanced_threshold=b_threshold,
        balanced_sensitivity=b_sens,
        balanced_specificity=b_spec,
        ece=ece,
    )


#: Equal-width score bins of the reliability diagram and the ECE.
RELIABILITY_BINS = 10


def reliability(
    y_true: ArrayLike, scores: ArrayLike, bins: int = RELIABILITY_BINS
) -> tuple[float, list[tuple[float, float, int]]]:
    """(ECE, [(mean score, observed positive rate, count) per non-empty bin]) of probabilities in [0, 1].

    ECE = sum over bins of (count / n) * |observed rate - mean score|: how far the scores are from being
    usable as probabilities (0 = perfectly calibrated). NaN for no samples.
    """
    y, s = _as_binary(y_true, scores)
    if y.size == 0:
        return math.nan, []
    index = np.minimum((np.clip(s, 0.0, 1.0) * bins).astype(np.int64), bins - 1)  # (n,)
    table: list[tuple[float, float, int]] = []
    ece = 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count == 0:
            continue
        confidence, observed = float(s[members].mean()), float(y[members].mean())
        table.append((confidence, observed, count))
        ece += count / y.size * abs(observed - confidence)
    return float(ece), table
