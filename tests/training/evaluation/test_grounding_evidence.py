"""Token evidence maps: the pooling, the labels, a fit that must find a planted finding, and the CLI on
real NIH films with a tiny model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.contract.vocabulary import PATHOLOGY
from tests.support.training.tiny_models import write_tiny_checkpoints
from training.data.manifest import ManifestRecord, write_manifest
from training.data.sources import read_nih_cxr14
from training.evaluation import compare_grounding
from training.evaluation.grounding_evidence import (
    EvidenceHead,
    EvidenceSettings,
    evidence_maps,
    fit_head,
    label_matrix,
    load_head,
    main,
    pooled_aurocs,
    pooled_logits,
)


def test_pooling_follows_the_best_token_inside_the_prior_only() -> None:
    logits = torch.zeros(1, 1, 3, 3)
    logits[0, 0, 0, 0], logits[0, 0, 2, 2] = 9.0, 4.0
    inside = torch.ones(1, 1, 3, 3)
    assert float(pooled_logits(logits, inside, sharpness=50.0)) == pytest.approx(9.0, abs=0.1)
    assert float(pooled_logits(logits, inside, sharpness=1e-3)) == pytest.approx(13.0 / 9.0, abs=0.01)
    outside_best = inside.clone()
    outside_best[0, 0, 0, 0] = 0.0  # the strongest token lies where the masks see no chest
    assert float(pooled_logits(logits, outside_best, sharpness=50.0)) == pytest.approx(4.0, abs=0.1)


def test_labels_keep_unlabelled_and_placeless_queries_out() -> None:
    records = [ManifestRecord(image="a.png", split="train", source="nih",
                              labels={"effusion": 1, "normal": 0, "not-a-query": 1}),
               ManifestRecord(image="b.png", split="train", source="nih", labels={"effusion": 0})]
    targets = label_matrix(records, names=("normal", "effusion", "nodule"))
    assert targets.tolist() == [[-1.0, 1.0, -1.0], [-1.0, 0.0, -1.0]]


def test_the_fit_points_at_the_token_that_carries_the_label() -> None:
    rng = np.random.default_rng(0)
    n, channels, side = 240, 8, 6
    grids = torch.from_numpy(rng.normal(size=(n, channels, side, side)).astype(np.float32))
    signal = torch.from_numpy(rng.normal(size=channels).astype(np.float32)) * 3.0
    targets = np.full((n, 3), -1.0, dtype=np.float32)
    targets[:, 1] = rng.integers(0, 2, size=n)  # only query 1 is labelled
    planted = {}
    for i in np.flatnonzero(targets[:, 1] == 1):
        row, column = rng.integers(1, side - 1, size=2)  # inside the prior's border
        grids[i, :, row, column] += signal
        planted[int(i)] = int(row) * side + int(column)
    priors = torch.zeros(n, 1, side, side)
    priors[:, :, 1:-1, 1:-1] = 1.0
    book = torch.eye(3, 5)
    head = fit_head(grids, priors, targets, book, EvidenceSettings(width=4, epochs=60, batch_size=32))
    with torch.no_grad():
        maps = evidence_maps(head(grids, book), priors)[:, 1].flatten(1)  # (N, G*G)
    peaks = maps.argmax(dim=1)
    hits = [int(peaks[i]) == cell for i, cell in planted.items()]
    assert np.mean(hits) > 0.9  # chance: 1 of 16 cells inside the prior
    assert torch.allclose(maps.sum(dim=1), torch.ones(n), atol=1e-5)
    assert float(maps.reshape(n, side, side)[:, 0, :].max()) < 1e-3  # no heat where the prior is empty


def test_fit_on_nih_films_and_score_its_maps_on_the_boxes(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = read_nih_cxr14(shared_data / "nih-cxr14")
    chosen = ([r for r in records if r.split == "train" and not r.boxes][:6]
              + [r for r in records if r.split == "val"][:3] + [r for r in records if r.boxes][:2])
    manifest = tmp_path / "nih.jsonl"
    write_manifest(chosen, manifest)
    checkpoint, seg_checkpoint = write_tiny_checkpoints(tmp_path)
    head_path = tmp_path / "evidence.pt"
    argv = ["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg_checkpoint), "--manifest",
            str(manifest), "--out", str(head_path), "--epochs", "2", "--width", "8"]
    assert main(argv) == 0
    figures = json.loads(head_path.with_suffix(".json").read_text())
    assert figures["settings"]["width"] == 8 and set(figures) >= {"pooled_auroc_train", "pooled_auroc_val"}
    head, settings = load_head(head_path)
    assert settings.epochs == 2 and head.bias.shape == (75,)
    capsys.readouterr()
    out = tmp_path / "grounding.json"
    assert compare_grounding.main(["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg_checkpoint),
                                   "--manifest", str(manifest), "--json", str(out),
                                   "--evidence-head", str(head_path), "--methods", "layer_mean_prior"]) == 0
    results = json.loads(out.read_text())
    n_boxes = sum(len(r.boxes) for r in chosen)
    assert results[compare_grounding.EVIDENCE]["n"] == n_boxes > 0
    assert f"| {compare_grounding.EVIDENCE} | {n_boxes} |" in capsys.readouterr().out


def test_label_checks_rank_within_each_collection_not_across_them() -> None:
    """A head whose score only says which collection a film comes from ranks no finding within one."""
    head = EvidenceHead(token_dim=1, text_dim=2, num_queries=2, width=1)
    with torch.no_grad():
        head.tokens.weight.fill_(1.0)
        head.tokens.bias.zero_()
        head.queries.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.bias.zero_()
    book = torch.eye(2)
    collection = torch.tensor([5.0] * 8 + [0.0] * 8)  # the score: 5 on one collection, 0 on the other
    grids = collection[:, None, None, None].expand(16, 1, 2, 2).clone()
    priors = torch.ones(16, 1, 2, 2)
    targets = np.full((16, 2), -1.0, dtype=np.float32)
    targets[:, 0] = [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]  # 75 % positives, then 25 %
    figures = pooled_aurocs(head, (grids, priors, targets, ["a"] * 8 + ["b"] * 8), book, sharpness=1.0)
    first = PATHOLOGY[0]
    assert figures == {"a": {first: 0.5}, "b": {first: 0.5}}  # pooled over both it would be 0.75
