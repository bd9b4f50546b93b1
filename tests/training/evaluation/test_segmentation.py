"""Segmentation scores at the film's own resolution, and heads measured at the input size they were
trained at, on real JSRT films and their expert masks."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.contract.imaging import Letterbox, decode_path
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from tests.support.training.tiny_models import write_tiny_checkpoints
from training.data.manifest import ManifestRecord, write_manifest
from training.data.sources import read_jsrt_scr
from training.evaluation.labels import load_masks
from training.evaluation.segmentation import (
    evaluate_segmentation,
    film_segmentation_scores,
    load_segmentation,
    main,
)
from training.export.bundle import load_models
from training.model import SegmentationModel


@pytest.fixture(scope="module")
def jsrt(shared_data: Path) -> list[ManifestRecord]:
    return read_jsrt_scr(shared_data / "jsrt-scr")[:2]


def _logits_of_masks(
    record: ManifestRecord, size: int, sign: float
) -> tuple[np.ndarray, Letterbox, tuple[int, int]]:
    """(K, S, S) logits that say +-10 where the expert masks are, drawn in the letterbox of `size` px."""
    decoded = decode_path(record.image)
    box = PreprocessingSpec.trained(size).apply(decoded.pixels).box
    masks = record.masks or {}
    channels = []
    for name in SEGMENTATION_STRUCTURES:
        with Image.open(masks[name]) as image:
            small = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BOX)) > 127
        channels.append(np.where(small, sign * 10.0, -sign * 10.0))
    rows, columns = decoded.pixels.shape
    return np.stack(channels).astype(np.float32), box, (int(rows), int(columns))


def test_masks_drawn_at_a_small_input_score_high_at_the_films_own_resolution(
    jsrt: list[ManifestRecord],
) -> None:
    logits, box, shape = _logits_of_masks(jsrt[0], 128, 1.0)
    masks = load_masks(jsrt[0], shape)
    scores = film_segmentation_scores(SEGMENTATION_STRUCTURES, masks, box, logits)
    assert set(scores) == set(SEGMENTATION_STRUCTURES)
    assert all(scores[name]["dice"] > 0.85 for name in ("right_lung", "left_lung", "heart")), scores
    assert all(scores[name]["dice"] > 0.6 for name in ("right_clavicle", "left_clavicle")), scores
    inverted, _, _ = _logits_of_masks(jsrt[0], 128, -1.0)
    wrong = film_segmentation_scores(SEGMENTATION_STRUCTURES, masks, box, inverted)
    assert all(wrong[name]["dice"] < 0.5 for name in SEGMENTATION_STRUCTURES), wrong


def test_a_head_is_run_at_the_input_size_it_was_trained_at(
    jsrt: list[ManifestRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, seg = write_tiny_checkpoints(tmp_path, seg_image_size=96)
    _, structures, size = load_segmentation(seg)
    assert (size, structures) == (96, list(SEGMENTATION_STRUCTURES))
    seen: list[tuple[int, ...]] = []
    original = SegmentationModel.forward

    def spy(self: SegmentationModel, images):  # type: ignore[no-untyped-def]
        seen.append(tuple(images.shape))
        return original(self, images)

    monkeypatch.setattr(SegmentationModel, "forward", spy)
    table = evaluate_segmentation(seg, jsrt, batch_size=8)
    assert seen == [(2, 3, 96, 96)]
    assert set(table) == set(SEGMENTATION_STRUCTURES)
    assert all(row["n"] == 2 and 0.0 <= row["dice"] <= 1.0 for row in table.values())


def test_cli_writes_one_row_per_checkpoint(jsrt: list[ManifestRecord], tmp_path: Path) -> None:
    manifest = tmp_path / "jsrt.jsonl"
    write_manifest([dataclasses.replace(r, split="val") for r in jsrt], manifest)
    _, seg = write_tiny_checkpoints(tmp_path, seg_image_size=96)
    out = tmp_path / "table.json"
    assert main(["--seg-checkpoint", str(seg), "--manifest", str(manifest), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table[str(seg)]["image_size"] == 96
    assert table[str(seg)]["structures"]["heart"]["n"] == 2


def test_a_head_trained_at_another_input_size_cannot_be_exported(tmp_path: Path) -> None:
    checkpoint, seg = write_tiny_checkpoints(tmp_path, seg_image_size=96)
    with pytest.raises(ValueError, match="a bundle has one input size"):
        load_models(checkpoint, seg)
