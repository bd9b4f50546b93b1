"""`python -m training.export.runtime_drift --bundle DIR --manifest FILE...`: OpenVINO at a precision
(mixed, bf16 or fp32; auto: mixed where the CPU has native bf16) against ONNX Runtime fp32, on real films,
judged by the int8 variants' bounds.

Why: with `MEDSLIP_RUNTIME=openvino` the service computes partly in bf16 where the CPU has it natively
(precision mixed, `app.runtime_openvino`), while the bundle's card figures come from ONNX Runtime in fp32
(`training.evaluation.predictors`). This measures what that costs on the validation split, with the same
rule as an int8 variant (`int8_measure.decide`): every calibrated finding within 0.005 AUROC, finding heat
maps with a mean cosine of at least 0.95. It also reports how far the served masks move (Dice between the
two runtimes' thresholded masks, per structure).

Both runtimes run the bundle's full graph, batch by batch, on the same preprocessed films (`load_inputs`:
frontal films in a fixed shuffle). Prints one JSON document; exit status 2 when a bound is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.contract.bundle import Bundle, load_bundle
from app.contract.bundle_metadata import BundleMetadata
from app.runtime import ImageModelRunner, OrtImageModel
from app.runtime_openvino import OpenVinoImageModel
from training.data.manifest import filter_split, read_manifest
from training.export.int8_measure import cpu_info, decide, measure_drift
from training.export.int8_static import calibrated_findings, load_inputs
from training.metrics import dice

logger = logging.getLogger(__name__)


def run_all(runner: ImageModelRunner, bundle: Bundle, images: Sequence[NDArray[np.float32]],
            batch: int) -> dict[str, NDArray[np.float32]]:
    """Probabilities, finding maps and segmentation logits of every image, stacked."""
    runs = []
    for start in range(0, len(images), batch):
        batch_images = np.stack(images[start:start + batch])  # (B, 3, S, S)
        out = runner.run(batch_images, bundle.pathology_queries, bundle.anatomy_queries)
        runs.append({"pathology_probs": out.pathology_probs, "pathology_maps": out.pathology_maps,
                     "segmentation_logits": out.segmentation_logits})
    return {name: np.concatenate([run[name] for run in runs]) for name in runs[0]}


def mask_agreement(reference: NDArray[np.float32], candidate: NDArray[np.float32],
                   structures: Sequence[str]) -> dict[str, float]:
    """Mean Dice, per structure, between the masks (logit > 0) of two runtimes on the same films; a film
    where both masks are empty counts as full agreement."""
    want, got = reference > 0, candidate > 0  # (N, K, S, S)
    scores = np.array([[dice(g, w) for g, w in zip(film_got, film_want, strict=True)]
                       for film_got, film_want in zip(got, want, strict=True)])  # (N, K), NaN: both empty
    return {name: round(float(np.nan_to_num(scores[:, k], nan=1.0).mean()), 5)
            for k, name in enumerate(structures)}


def measure(bundle_dir: Path, manifests: Sequence[Path], *, split: str, limit: int, threads: int,
            precision: str, batch: int) -> dict[str, Any]:
    """The drift document of OpenVINO at `precision` against ONNX Runtime fp32 on `split`."""
    metadata = BundleMetadata.verify(bundle_dir)
    bundle = load_bundle(bundle_dir, verify=False)
    records = [record for manifest in manifests for record in read_manifest(manifest)]
    images, labels = load_inputs(filter_split(records, split), metadata.preprocessing_spec(), limit)
    if not images:
        raise SystemExit(f"no usable {split} images in the manifest(s)")
    reference = run_all(OrtImageModel(bundle, device="cpu", intra_op_threads=threads, precision="fp32"),
                        bundle, images, batch)
    runner = OpenVinoImageModel(bundle, threads=threads, precision=precision)
    candidate = run_all(runner, bundle, images, batch)
    drift = measure_drift(reference, candidate, labels, bundle.pathology_names, calibrated_findings(metadata),
                          names=("fp32", runner.precision))
    return {
        "bundle": f"{bundle.name}/{bundle.version}",
        "reference": "onnxruntime fp32 compute",
        "candidate": runner.provider,
        "cpu": cpu_info(),
        "split": split,
        "drift": drift,
        "mask_dice_between_runtimes": mask_agreement(reference["segmentation_logits"],
                                                     candidate["segmentation_logits"], bundle.structures),
        "reasons": decide(drift),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path, nargs="+")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=100_000, help="at most this many films (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["auto", "mixed", "bf16", "fp32"], default="auto",
                        help="OpenVINO's compute precision (auto: mixed where the CPU has native bf16)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON document here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    document = measure(args.bundle, args.manifest, split=args.split, limit=args.limit, threads=args.threads,
                       precision=args.precision, batch=args.batch)
    text = json.dumps(document, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 2 if document["reasons"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
