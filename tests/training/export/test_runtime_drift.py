"""OpenVINO against ONNX Runtime fp32: mask agreement, batched runs, drift named after the two sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract.bundle import load_bundle
from app.runtime import OrtImageModel
from app.runtime_openvino import openvino_available
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from training.export.int8_measure import decide, measure_drift
from training.export.runtime_drift import mask_agreement, run_all


def test_mask_agreement_is_dice_per_structure_and_empty_pairs_agree() -> None:
    reference = np.full((2, 3, 4, 4), -1.0, np.float32)  # (N, K, S, S) logits: all background
    candidate = reference.copy()
    reference[:, 0, :2] = 1.0  # structure a: the same top half in both
    candidate[:, 0, :2] = 1.0
    reference[:, 1, :2] = 1.0  # structure b: top half against bottom half
    candidate[:, 1, 2:] = 1.0
    assert mask_agreement(reference, candidate, ["a", "b", "c"]) == {"a": 1.0, "b": 0.0, "c": 1.0}


@pytest.mark.skipif(not openvino_available(), reason="the openvino package is not installed")
def test_openvino_fp32_does_not_drift_and_a_shifted_candidate_is_named_in_the_reasons(
    tiny_bundle: Path,  # noqa: F811
) -> None:
    from app.runtime_openvino import OpenVinoImageModel

    bundle = load_bundle(tiny_bundle)
    rng = np.random.default_rng(2)
    images = [rng.standard_normal((3, bundle.image_size, bundle.image_size)).astype(np.float32)
              for _ in range(5)]
    labels = [{"normal": i % 2} for i in range(5)]
    reference = run_all(OrtImageModel(bundle, device="cpu", intra_op_threads=1, precision="fp32"), bundle,
                        images, batch=2)
    candidate = run_all(OpenVinoImageModel(bundle, threads=1, precision="fp32"), bundle, images, batch=2)
    assert reference["pathology_probs"].shape == (5, len(bundle.pathology_names))  # 3 batches stacked
    drift = measure_drift(reference, candidate, labels, bundle.pathology_names, ["normal"],
                          names=("fp32", "openvino"))
    assert drift["compared"] == ["fp32", "openvino"] and set(drift["auroc"]["normal"]) >= {"fp32", "openvino"}
    assert decide(drift) == [] and drift["pathology_maps_mean_cosine"] > 0.9999
    column = bundle.pathology_names.index("normal")
    flipped = dict(candidate, pathology_probs=candidate["pathology_probs"].copy())
    flipped["pathology_probs"][:, column] *= -1.0  # ranking reversed
    reasons = decide(measure_drift(reference, flipped, labels, bundle.pathology_names, ["normal"],
                                   names=("fp32", "openvino")))
    assert len(reasons) == 1 and "fp32" in reasons[0] and "openvino" in reasons[0]
    assert all(value > 0.99 for value in mask_agreement(reference["segmentation_logits"],
                                                        candidate["segmentation_logits"],
                                                        bundle.structures).values())
