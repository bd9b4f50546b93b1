"""A bundle evaluated on either service runtime: the same predictions, within bf16's rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.runtime import OrtImageModel
from app.runtime_openvino import openvino_available
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from training.evaluation.predictors import OnnxPredictor


@pytest.mark.skipif(not openvino_available(), reason="the openvino package is not installed")
def test_openvino_predictor_matches_onnx_runtime(tiny_bundle: Path) -> None:  # noqa: F811
    from app.runtime_openvino import OpenVinoImageModel

    reference, candidate = OnnxPredictor(tiny_bundle), OnnxPredictor(tiny_bundle, runtime="openvino")
    assert isinstance(reference.runner, OrtImageModel) and isinstance(candidate.runner, OpenVinoImageModel)
    assert candidate.info == reference.info
    size = reference.info.preprocessing.image_size
    images = np.random.default_rng(4).standard_normal((2, 3, size, size)).astype(np.float32)
    want, got = reference.predict(images), candidate.predict(images)
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
    np.testing.assert_allclose(got["pathology_probs"], want["pathology_probs"], atol=0.05)


def test_an_unknown_runtime_combination_is_refused(tiny_bundle: Path) -> None:  # noqa: F811
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        OnnxPredictor(tiny_bundle, device="cuda", runtime="openvino")
