"""Predictors: a bundle on either service runtime (the same predictions, within bf16's rounding), and
ensembles of predictors (every output averaged)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import OUTPUT_NAMES
from app.runtime import OrtImageModel
from app.runtime_openvino import openvino_available
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from training.evaluation.predictors import EnsemblePredictor, OnnxPredictor, PredictorInfo


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


class _Constant:
    """A predictor whose every output is one value: the ensemble's mean is then known exactly."""

    def __init__(self, info: PredictorInfo, value: float) -> None:
        self.info, self.value = info, value

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.full((len(texts), 4), self.value, dtype=np.float32)

    def predict(self, images: NDArray[np.float32],
                extra_queries: NDArray[np.float32] | None = None) -> dict[str, NDArray[np.float32]]:
        return {name: np.full((len(images), 2), self.value, dtype=np.float32) for name in OUTPUT_NAMES}


def _info(name: str, size: int = 224) -> PredictorInfo:
    return PredictorInfo(kind="checkpoint", name=name, sha256=name * 4,
                         preprocessing=PreprocessingSpec.trained(size), pathology=("a", "b"),
                         anatomy=("c",), structures=())


def test_an_ensemble_averages_every_output_of_its_members() -> None:
    ensemble = EnsemblePredictor([_Constant(_info("one"), 0.2), _Constant(_info("two"), 0.6)])
    outputs = ensemble.predict(np.zeros((3, 3, 8, 8), dtype=np.float32))
    assert set(outputs) == set(OUTPUT_NAMES)
    for value in outputs.values():
        assert value.shape == (3, 2) and value.dtype == np.float32
        np.testing.assert_allclose(value, 0.4)
    assert ensemble.info.kind == "ensemble" and ensemble.info.name == "one + two"
    assert ensemble.info.sha256 not in {"one" * 4, "two" * 4}
    np.testing.assert_allclose(ensemble.encode_texts(["x"]), 0.2)  # the first member's encoder


def test_an_ensemble_refuses_members_of_different_contracts() -> None:
    with pytest.raises(ValueError, match="at least two"):
        EnsemblePredictor([_Constant(_info("one"), 0.2)])
    with pytest.raises(ValueError, match="does not share"):
        EnsemblePredictor([_Constant(_info("one"), 0.2), _Constant(_info("two", size=288), 0.6)])
