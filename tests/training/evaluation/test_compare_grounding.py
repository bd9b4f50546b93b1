"""The finding heat-map comparison on the real NIH radiologist boxes, with a tiny model."""

import json
from pathlib import Path

import pytest

from tests.support.training.tiny_models import write_tiny_checkpoints
from training.data.manifest import write_manifest
from training.data.sources import read_nih_cxr14
from training.evaluation.compare_grounding import ATTRIBUTION, main
from training.model.grounding import GROUNDING_METHODS, uses_prior


def test_every_method_scores_every_nih_box(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boxed = [r for r in read_nih_cxr14(shared_data / "nih-cxr14") if r.boxes][:3]
    assert boxed, "the shared NIH data holds radiologist boxes"
    manifest = tmp_path / "boxed.jsonl"
    assert write_manifest(boxed, manifest) == len(boxed)
    checkpoint, seg_checkpoint = write_tiny_checkpoints(tmp_path)
    out = tmp_path / "grounding.json"
    argv = ["--checkpoint", str(checkpoint), "--manifest", str(manifest), "--json", str(out)]
    assert main([*argv, "--seg-checkpoint", str(seg_checkpoint)]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {*GROUNDING_METHODS, ATTRIBUTION}
    n_boxes = sum(len(r.boxes) for r in boxed)
    for figures in results.values():
        assert figures["n"] == n_boxes
        assert 0.0 <= figures["pointing_game"] <= 1.0 and figures["heat_ratio"] >= 0.0
    table = capsys.readouterr().out
    assert all(f"| {method} | {n_boxes} |" in table for method in (*GROUNDING_METHODS, ATTRIBUTION))
    # Without a segmentation head the prior methods have nothing to multiply by and are left out.
    assert main(argv) == 0
    assert not any(uses_prior(name) for name in json.loads(out.read_text()))  # attribution_prior too
