"""Segmentation scores of one film, and `python -m training.evaluation.segmentation`: Dice of segmentation
checkpoints, each run at the input size its head was trained at.

Every score is taken at the film's own resolution: the logits go back through the letterbox to the
original pixels, as `/segment` returns them, so heads run at different input sizes are compared on the
same pixels. `medslip-eval` runs one graph at one input size; a head trained at a larger input on the
frozen trunk (`medslip-finetune-seg --override data.image_size=448`) is measured here instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from app.contract.imaging import ImagingError, Letterbox, decode_path
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.postprocess import segmentation_probability
from training.data.manifest import ManifestRecord, filter_split, read_manifest
from training.data.sources.covid import LUNGS_MASK
from training.evaluation.labels import load_masks
from training.metrics import segmentation_scores
from training.model import SegmentationModel, load_checkpoint

logger = logging.getLogger(__name__)


#: The two lung structures whose union is scored against covid-chestxray's both-lungs masks.
LUNG_STRUCTURES = frozenset({"right_lung", "left_lung"})


def film_probabilities(structures: Sequence[str], box: Letterbox, logits: NDArray[np.float32],
                       wanted: Collection[str]) -> dict[str, NDArray[np.float32]]:
    """logits (K, S, S) -> the `wanted` structures' sigmoid probabilities (H, W) at the film's own
    resolution, each channel resized once (`/segment`'s masks are these at its threshold)."""
    return {name: segmentation_probability(channel, box)
            for name, channel in zip(structures, logits, strict=True) if name in wanted}


def film_segmentation_scores(
    structures: Sequence[str],
    masks: Mapping[str, NDArray[np.bool_]],
    box: Letterbox,
    logits: NDArray[np.float32],
) -> dict[str, dict[str, float]]:
    """logits (K, S, S) of one film -> Dice/IoU of every structure it has an expert mask of (+ the lungs
    union), at the film's own resolution; `masks` as `training.evaluation.labels.load_masks` reads them."""
    probs = film_probabilities(structures, box, logits, set(masks) | LUNG_STRUCTURES)
    return probability_scores(masks, probs)


def probability_scores(masks: Mapping[str, NDArray[np.bool_]], probs: Mapping[str, NDArray[np.float32]]
                       ) -> dict[str, dict[str, float]]:
    """`film_probabilities` of one film -> Dice/IoU of every structure with both an expert mask and a
    probability (+ the lungs union where both lungs have one)."""
    scores = {name: segmentation_scores(probs[name][None], masks[name][None], [name])[name]
              for name in probs if name in masks}
    if LUNGS_MASK in masks and probs.keys() >= LUNG_STRUCTURES:
        # (H, W): max of the two probabilities >= t exactly when either lung mask the service
        # returns covers the pixel, so this scores the union a user of /segment gets
        union = np.maximum(probs["right_lung"], probs["left_lung"])
        lungs = segmentation_scores(union[None], masks[LUNGS_MASK][None], [LUNGS_MASK])
        scores[LUNGS_MASK] = lungs[LUNGS_MASK]
    return scores


def load_segmentation(path: Path) -> tuple[SegmentationModel, list[str], int]:
    """(model in eval mode, structures, input size it was trained at) of a segmentation checkpoint."""
    base, extra = load_checkpoint(path)
    settings = extra.get("segmentation")
    if "segmentation_head" not in extra or not isinstance(settings, dict):
        raise ValueError(f"{path.name} is not a segmentation checkpoint (no segmentation_head)")
    model = SegmentationModel(base.res_features, num_structures=len(settings["structures"]),
                              decoder_channels=tuple(settings["decoder_channels"]))
    model.head.load_state_dict(extra["segmentation_head"])
    size = int(settings.get("image_size", base.config.image_size))
    return model.eval(), list(settings["structures"]), size


def evaluate_segmentation(
    path: Path, records: Sequence[ManifestRecord], batch_size: int = 8
) -> dict[str, dict[str, float]]:
    """structure -> {"n", "dice", "iou"} means of checkpoint `path` over the `records` with masks."""
    model, structures, size = load_segmentation(path)
    spec = PreprocessingSpec.trained(size)
    collected: dict[str, list[dict[str, float]]] = defaultdict(list)
    batch: list[tuple[ManifestRecord, tuple[int, int], Letterbox, NDArray[np.float32]]] = []

    def flush() -> None:
        images = torch.from_numpy(np.stack([item[3] for item in batch]))  # (B, 3, S, S)
        with torch.no_grad():
            logits = model(images).float().numpy()  # (B, K, S, S)
        for (record, shape, box, _), film_logits in zip(batch, logits, strict=True):
            masks = load_masks(record, shape)
            for name, scores in film_segmentation_scores(structures, masks, box, film_logits).items():
                collected[name].append(scores)
        batch.clear()

    for record in records:
        if not record.masks:
            continue
        try:
            decoded = decode_path(record.image)
        except ImagingError as exc:  # the code only: details may name the file
            logger.warning("skipped a film: %s", exc.code)
            continue
        prepared = spec.apply(decoded.pixels)
        batch.append((record, decoded.pixels.shape, prepared.box, prepared.tensor))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return {name: {"n": len(items), "dice": float(np.mean([i["dice"] for i in items])),
                   "iou": float(np.mean([i["iou"] for i in items]))}
            for name, items in sorted(collected.items())}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seg-checkpoint", type=Path, nargs="+", required=True)
    parser.add_argument("--manifest", type=Path, nargs="+", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the table")
    args = parser.parse_args(argv)
    records = [r for m in args.manifest for r in filter_split(read_manifest(m), args.split)]
    table = {}
    for path in args.seg_checkpoint:
        _, _, size = load_segmentation(path)
        table[str(path)] = {"image_size": size, "structures": evaluate_segmentation(path, records)}
    text = json.dumps(table, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
