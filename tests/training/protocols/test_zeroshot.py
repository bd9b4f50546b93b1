"""Zero-shot protocol: the threshold rules on known rows, and the CXR14 run on real NIH films through
the tiny bundle (CLI end to end, resumable)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from tests.support.training.protocol_trees import write_cxr14_tree
from training.evaluation.predictors import OnnxPredictor
from training.protocols.cli import main
from training.protocols.cxr14 import CLASSES, read_cxr14
from training.protocols.prompts import DEFAULT_PROMPTS, plan_queries
from training.protocols.stream import StreamSettings, read_rows
from training.protocols.zeroshot import class_metrics, f1_at_threshold, records_to_score, score_dataset


def _row(split: str, label: int, score: float) -> dict[str, object]:
    return {"split": split, "labels": {"A": label}, "scores": {"A": score}, "grounding": []}


def test_f1_counts_score_equal_to_threshold_as_positive() -> None:
    assert f1_at_threshold([1, 0, 1, 0], [0.9, 0.6, 0.6, 0.1], 0.6) == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert np.isnan(f1_at_threshold([0, 0], [0.3, 0.4], 0.5))


def test_test_chosen_and_val_chosen_thresholds_differ_as_defined() -> None:
    test = [_row("test", 1, 0.8), _row("test", 1, 0.4), _row("test", 0, 0.3), _row("test", 0, 0.1)]
    val = [_row("val", 1, 0.9), _row("val", 0, 0.7)]
    metrics = class_metrics(test + val, "A")
    assert metrics["auroc"] == 1.0 and metrics["n_test"] == 4 and metrics["n_val"] == 2
    # on test the best F1 (1.0) is at 0.4; on val at 0.9, which on test keeps only one positive
    assert metrics["test_chosen"] == {"threshold": 0.4, "f1": 1.0, "acc": 1.0}
    assert metrics["val_chosen"]["threshold"] == 0.9
    assert metrics["val_chosen"]["f1"] == 0.0 and metrics["val_chosen"]["acc"] == 0.5


class CountingPredictor:
    """The real bundle predictor, counting the films it is asked to score."""

    def __init__(self, inner: OnnxPredictor) -> None:
        self.inner, self.info, self.films = inner, inner.info, 0

    def predict(self, images: np.ndarray, extra_queries: np.ndarray | None = None) -> dict[str, np.ndarray]:
        self.films += images.shape[0]
        return self.inner.predict(images, extra_queries)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_texts(texts)


@pytest.mark.shared_data
def test_interrupted_stream_resumes_without_rescoring(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    data = read_cxr14(write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=6).root)
    predictor = CountingPredictor(OnnxPredictor(tiny_bundle))
    queries = plan_queries(DEFAULT_PROMPTS["cxr14"], predictor.info.pathology)
    settings = StreamSettings(batch_size=4, workers=1, progress=False)
    rows, _ = score_dataset(predictor, data, queries, partial_dir=tmp_path / "partial", settings=settings)
    n_films = len(records_to_score(data))
    assert len(rows) == n_films and predictor.films == n_films
    partial = tmp_path / "partial" / "cxr14.jsonl"
    lines = partial.read_text(encoding="utf-8").splitlines()
    partial.write_text("\n".join(lines[:-2]) + "\n" + lines[-1][:15], encoding="utf-8")  # killed mid-write
    again, _ = score_dataset(predictor, data, queries, partial_dir=tmp_path / "partial", settings=settings)
    assert predictor.films == n_films + 2  # only the two lost films
    assert [row["key"] for row in again] == [row["key"] for row in rows]
    assert again[0]["scores"] == rows[0]["scores"]


@pytest.mark.shared_data
def test_cxr14_benchmark_on_real_films_with_the_tiny_bundle(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    tree = write_cxr14_tree(shared_data, tmp_path / "data" / "cxr14", n_plain=12)
    out = tmp_path / "out"
    argv = ["--suite", "paper", "--data-root", str(tmp_path / "data"), "--bundle", str(tiny_bundle), "--out",
            str(out), "--tasks", "zeroshot,grounding", "--no-progress", "--batch-size", "8"]
    assert main(argv) == 0
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert report["evaluated"]["kind"] == "bundle"
    assert report["datasets"]["rsna"] == {"status": "skipped", "reason": "not found under --data-root"}
    section = report["zero_shot"]["cxr14"]
    assert list(section["classes"]) == list(CLASSES)
    assert all(m["n_test"] == len(tree.test) for m in section["classes"].values())
    rows = read_rows(out / "partial" / "cxr14.jsonl")
    test_rows = [row for row in rows if row["split"] == "test"]
    labels = [row["labels"]["Pneumonia"] for row in test_rows]
    scores = [row["scores"]["Pneumonia"] for row in test_rows]
    assert section["classes"]["Pneumonia"]["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    data = read_cxr14(tree.root)
    scored_boxes = sum(len(r.boxes) for r in data.records if r.split in {"test", "val"})
    assert report["grounding"]["cxr14"]["all"]["n"] == scored_boxes > 0
    markdown = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "| this run: tiny-cxr/0.0.1 | test-chosen | reproduced here |" in markdown
    assert "not a medical device" in markdown
    before = (out / "partial" / "cxr14.jsonl").read_text(encoding="utf-8").count("\n")
    assert main(argv) == 0  # resumed: every film already scored, same report figures
    partial_lines = (out / "partial" / "cxr14.jsonl").read_text(encoding="utf-8").count("\n")
    assert partial_lines == before
    again = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert again["zero_shot"] == report["zero_shot"] and again["grounding"] == report["grounding"]
