"""Zero-shot classification as MedKLIP and MAVL report it: AUROC, F1 and ACC per class, macro-averaged.

Threshold, two ways, reported apart:
- "test-chosen" (the original protocol, MedKLIP's `test.py`): for each class the threshold that maximises
  F1 ON THE TEST SET; F1 and ACC are read at that threshold. It is optimistic: the test labels pick it.
- "val-chosen": the max-F1 threshold of the VALIDATION split, applied unchanged to the test split.
A film is positive when score >= threshold (MedKLIP compares with `>`; with continuous scores the two
differ only on exact ties). AUROC needs no threshold and is the same in both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation.predictors import Predictor
from training.metrics import accuracy_at_threshold, auroc, max_f1
from training.protocols.datasets import BenchmarkData
from training.protocols.prompts import QueryPlan
from training.protocols.stream import StreamSettings, stream_rows

THRESHOLD_MODES: tuple[str, ...] = ("test_chosen", "val_chosen")


def f1_at_threshold(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    """F1 = 2TP / (2TP + FP + FN) at score >= threshold; NaN without positives or threshold."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if math.isnan(threshold) or not y.any():
        return math.nan
    predicted = s >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn)


def _pairs(rows: Sequence[Mapping[str, Any]], split: str, name: str) -> tuple[list[int], list[float]]:
    labels, scores = [], []
    for row in rows:
        if row["split"] == split and name in row["labels"] and name in row["scores"]:
            labels.append(int(row["labels"][name]))
            scores.append(float(row["scores"][name]))
    return labels, scores


def _none(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def class_metrics(rows: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """AUROC on test; F1/ACC at the test-chosen and at the val-chosen threshold."""
    y_test, s_test = _pairs(rows, "test", name)
    y_val, s_val = _pairs(rows, "val", name)
    out: dict[str, Any] = {"n_test": len(y_test), "n_test_pos": int(sum(y_test)), "n_val": len(y_val),
                           "auroc": _none(auroc(y_test, s_test)) if y_test else None}
    _, test_threshold = max_f1(y_test, s_test) if y_test else (math.nan, math.nan)
    _, val_threshold = max_f1(y_val, s_val) if y_val else (math.nan, math.nan)
    for mode, threshold in (("test_chosen", test_threshold), ("val_chosen", val_threshold)):
        valid = y_test and not math.isnan(threshold)
        out[mode] = {
            "threshold": _none(threshold),
            "f1": _none(f1_at_threshold(y_test, s_test, threshold)) if valid else None,
            "acc": _none(accuracy_at_threshold(y_test, s_test, threshold)) if valid else None,
        }
    return out


def _macro(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 6) if kept else None


def classification_section(rows: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Per-class metrics and their macro means (classes without both labels on test are left out)."""
    per_class = {name: class_metrics(rows, name) for name in classes}
    mean: dict[str, Any] = {"auroc": _macro([m["auroc"] for m in per_class.values()])}
    for mode in THRESHOLD_MODES:
        mean[mode] = {metric: _macro([m[mode][metric] for m in per_class.values() if m["auroc"] is not None])
                      for metric in ("f1", "acc")}
    return {"mean": mean, "classes": per_class}


def records_to_score(data: BenchmarkData, max_images: int | None = None) -> list[Any]:
    """Test and val films (classification), plus boxed films of other splits when the set's boxes are
    never trained on (`ground_all_splits`); `max_images` keeps the first N of each split (smoke runs)."""
    chosen: list[Any] = []
    per_split: dict[str, int] = {}
    for record in data.records:
        wanted = record.split in ("test", "val") or (
            data.ground_all_splits and (record.boxes or record.image in data.rle_masks))
        if not wanted:
            continue
        if max_images is not None and per_split.get(record.split, 0) >= max_images:
            continue
        per_split[record.split] = per_split.get(record.split, 0) + 1
        chosen.append(record)
    return chosen


def score_dataset(predictor: Predictor, data: BenchmarkData, plan: QueryPlan, *,
                  partial_dir: Path, settings: StreamSettings, max_images: int | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One streamed pass over the films a benchmark evaluates; rows feed classification AND grounding."""
    records = records_to_score(data, max_images)
    return stream_rows(predictor, data, records, plan, partial=partial_dir / f"{data.name}.jsonl",
                       settings=settings, desc=f"zero-shot {data.name}")
