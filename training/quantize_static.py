"""`python -m training.quantize_static --bundle DIR --manifest FILE --version V`: an int8 QDQ bundle.

Static int8 (per-channel weights, activations calibrated on REAL preprocessed chest X-rays) of an fp32
image bundle, written as a new bundle version beside it. Only Conv/MatMul/Gemm are quantised: softmax
attention, whose output is the heat map, stays float. The drift against the fp32 graph (probabilities,
maps, AUROC on held-out images) is measured and recorded in the new bundle's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from app.imaging import ImagingError, decode_path
from app.imaging.preprocessing import PreprocessingSpec
from training.bundle import verify_bundle, write_metadata
from training.data.manifest import ManifestRecord, filter_split, read_manifest
from training.evaluate import LATERAL_VIEWS, evaluation_labels
from training.metrics import auroc
from training.model_card import render_model_card
from training.onnx_tools import check_onnx, cpu_session, max_abs_diff, run_session

logger = logging.getLogger(__name__)

QUANTISED_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds one preprocessed image at a time, with the bundle's own query books."""

    def __init__(self, images: Sequence[NDArray[np.float32]], pathology_book: NDArray[np.float32],
                 anatomy_book: NDArray[np.float32]) -> None:
        self._feeds = iter([{"image": image[None], "pathology_queries": pathology_book,
                             "anatomy_queries": anatomy_book} for image in images])

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        return next(self._feeds, None)


def load_inputs(records: Sequence[ManifestRecord], spec: PreprocessingSpec, limit: int
                ) -> tuple[list[NDArray[np.float32]], list[dict[str, int]]]:
    """Up to `limit` frontal images preprocessed per the bundle's spec, with their labels.

    Records are taken in the order of the sha256 of their file name: a fixed shuffle, so a manifest
    sorted by class still gives a mixed sample, identically on every machine.
    """
    images: list[NDArray[np.float32]] = []
    labels: list[dict[str, int]] = []
    shuffled = sorted(records, key=lambda r: hashlib.sha256(Path(r.image).name.encode("utf-8")).hexdigest())
    for record in shuffled:
        if len(images) == limit:
            break
        if record.view.upper() in LATERAL_VIEWS:
            continue
        try:
            decoded = decode_path(record.image)
        except ImagingError as exc:
            logger.info("calibration image skipped: %s", exc.code)
            continue
        images.append(spec.apply(decoded.pixels)[0])  # (3, S, S)
        labels.append(evaluation_labels(record))
    return images, labels


def _outputs(
    session_path: Path, images: Sequence[NDArray[np.float32]], books: tuple[NDArray[np.float32], ...]
) -> dict[str, NDArray[np.float32]]:
    """Run a graph image by image (batch 1, as calibration did) and stack the outputs."""
    session = cpu_session(session_path)
    runs = [run_session(session, {"image": image[None], "pathology_queries": books[0],
                                  "anatomy_queries": books[1]}) for image in images]
    return {name: np.concatenate([run[name] for run in runs]) for name in runs[0]}


def _map_cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean cosine between matching maps (B, Q, G, G), each flattened: 1.0 = same spatial pattern."""
    flat_a = a.reshape(a.shape[0] * a.shape[1], -1).astype(np.float64)  # (B*Q, G*G)
    flat_b = b.reshape(b.shape[0] * b.shape[1], -1).astype(np.float64)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)  # (B*Q,)
    cos = (flat_a * flat_b).sum(1) / (norms + 1e-12)
    return float(cos.mean())


def measure_drift(reference: dict[str, NDArray[np.float32]], quantised: dict[str, NDArray[np.float32]],
                  labels: Sequence[dict[str, int]], pathology_names: Sequence[str]) -> dict[str, Any]:
    """Max |diff| of probabilities, mean map cosine, and AUROC per labelled finding for both graphs."""
    drift: dict[str, Any] = {
        "n_images": int(reference["pathology_probs"].shape[0]),
        "pathology_probs_max_abs_diff": max_abs_diff(quantised["pathology_probs"],
                                                     reference["pathology_probs"]),
        "anatomy_probs_max_abs_diff": max_abs_diff(quantised["anatomy_probs"], reference["anatomy_probs"]),
        "pathology_maps_mean_cosine": _map_cosine(quantised["pathology_maps"], reference["pathology_maps"]),
        "anatomy_maps_mean_cosine": _map_cosine(quantised["anatomy_maps"], reference["anatomy_maps"]),
        "auroc": {},
    }
    for name in sorted({name for image_labels in labels for name in image_labels}):
        rows = [i for i, image_labels in enumerate(labels) if name in image_labels]
        y = [labels[i][name] for i in rows]
        column = list(pathology_names).index(name)
        fp32 = auroc(y, reference["pathology_probs"][rows, column])
        int8 = auroc(y, quantised["pathology_probs"][rows, column])
        drift["auroc"][name] = {"n": len(rows), "fp32": None if np.isnan(fp32) else fp32,
                                "int8": None if np.isnan(int8) else int8}
    return drift


def quantize_bundle(
    bundle_dir: Path, version: str, calibration: Sequence[NDArray[np.float32]],
    held_out: Sequence[NDArray[np.float32]], held_out_labels: Sequence[dict[str, int]],
) -> Path:
    """Write `<bundle_dir.parent>/<version>`: the int8 QDQ graph plus the fp32 bundle's other files."""
    metadata = verify_bundle(bundle_dir)
    graph = metadata["graphs"]["image_model"]
    if graph.get("precision", "fp32") != "fp32":
        raise ValueError("static quantisation starts from an fp32 bundle")
    target = bundle_dir.parent / version
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are immutable")
    books = tuple(np.load(bundle_dir / metadata[s]["embeddings_file"]).astype(np.float32)
                  for s in ("pathology", "anatomy"))
    with tempfile.TemporaryDirectory(dir=bundle_dir.parent, prefix=f".{version}-") as scratch:
        work = Path(scratch)
        prepared = work / "prepared.onnx"
        quant_pre_process(str(bundle_dir / graph["file"]), str(prepared), skip_symbolic_shape=True)
        staged = work / "bundle"
        staged.mkdir()
        quantised = staged / graph["file"]
        quantize_static(
            str(prepared), str(quantised), ImageCalibrationReader(calibration, *books),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTISED_OPS), per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        check_onnx(quantised)
        drift = measure_drift(_outputs(bundle_dir / graph["file"], held_out, books),
                              _outputs(quantised, held_out, books), held_out_labels,
                              metadata["pathology"]["names"])
        logger.info("int8 drift: %s", drift)
        for stream in ("pathology", "anatomy"):
            shutil.copyfile(bundle_dir / metadata[stream]["embeddings_file"],
                            staged / metadata[stream]["embeddings_file"])
        metadata = {key: value for key, value in metadata.items() if key != "files"}
        metadata["version"] = version
        metadata["graphs"]["image_model"].update(
            precision="int8-qdq",
            parity_max_abs_diff={"pathology_probs": drift["pathology_probs_max_abs_diff"],
                                 "anatomy_probs": drift["anatomy_probs_max_abs_diff"]},
            quantization={"method": "static QDQ: per-channel int8 weights, MinMax-calibrated activations",
                          "ops": list(QUANTISED_OPS), "n_calibration_images": len(calibration),
                          "source_version": bundle_dir.name, "drift_vs_fp32": drift},
        )
        (staged / "MODEL_CARD.md").write_text(render_model_card(metadata), encoding="utf-8")
        write_metadata(staged, metadata)
        verify_bundle(staged)
        staged.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Quantise a bundle; prints the new bundle folder and the measured drift (JSON) on stdout."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", required=True, type=Path, help="fp32 bundle folder")
    parser.add_argument("--manifest", required=True, type=Path, nargs="+")
    parser.add_argument("--version", required=True, help="version of the new int8 bundle")
    parser.add_argument("--calibration-split", default="train")
    parser.add_argument("--eval-split", default="val")
    parser.add_argument("--n-calibration", type=int, default=32)
    parser.add_argument("--n-eval", type=int, default=64)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = PreprocessingSpec.from_dict(verify_bundle(args.bundle)["preprocessing"])
    records = [record for manifest in args.manifest for record in read_manifest(manifest)]
    calibration, _ = load_inputs(filter_split(records, args.calibration_split), spec, args.n_calibration)
    held_out, labels = load_inputs(filter_split(records, args.eval_split), spec, args.n_eval)
    if not calibration or not held_out:
        parser.error("no usable calibration or evaluation images in the manifest(s)")
    target = quantize_bundle(args.bundle, args.version, calibration, held_out, labels)
    drift = json.loads((target / "metadata.json").read_text())["graphs"]["image_model"]["quantization"]
    sys.stdout.write(f"{target}\n{json.dumps(drift['drift_vs_fp32'])}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
