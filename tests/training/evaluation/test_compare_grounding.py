"""The finding heat-map comparison on the real NIH radiologist boxes, with a tiny model."""

import json
from pathlib import Path

import pytest
import torch

from tests.support.training.tiny_models import write_tiny_checkpoints
from training.data.manifest import write_manifest
from training.data.sources import read_nih_cxr14
from training.evaluation.compare_grounding import ATTRIBUTION, CONTRAST, main, query_contrast_maps
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
    assert set(results) == {*GROUNDING_METHODS, ATTRIBUTION, CONTRAST}
    n_boxes = sum(len(r.boxes) for r in boxed)
    for figures in results.values():
        assert figures["n"] == n_boxes
        assert 0.0 <= figures["pointing_game"] <= 1.0 and figures["heat_ratio"] >= 0.0
    table = capsys.readouterr().out
    assert all(f"| {method} | {n_boxes} |" in table for method in (*GROUNDING_METHODS, ATTRIBUTION, CONTRAST))
    # Without a segmentation head the prior methods have nothing to multiply by and are left out.
    assert main(argv) == 0
    assert not any(uses_prior(name) for name in json.loads(out.read_text()))  # attribution_prior too


def test_query_contrast_maps_keep_what_one_query_attends_to_beyond_the_others() -> None:
    # Every query attends mostly to cell (0, 0); query 1 also to (2, 3), which only it looks at.
    shared = torch.full((1, 3, 4, 4), 0.01)  # (B, Q, G, G)
    shared[:, :, 0, 0] = 0.8
    specific = shared.clone()
    specific[0, 1, 2, 3] = 0.3
    layers = [shared, specific]
    prior = torch.ones(1, 1, 4, 4)
    maps = query_contrast_maps(layers, prior)  # (1, 3, 4, 4)
    assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(1, 3))
    assert divmod(int(maps[0, 1].argmax()), 4) == (2, 3)  # the plain attention's peak is (0, 0)
    assert int(torch.stack(layers).mean(0)[0, 1].argmax()) == 0
    # The prior still decides where heat may go: outside it the map is empty.
    prior[..., 2, 3] = 0.0
    assert float(query_contrast_maps(layers, prior)[0, 1, 2, 3]) == 0.0
