"""Normalisation, the one-call preprocess, and the bundle's preprocessing spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.imaging import IMAGENET_MEAN, IMAGENET_STD, PreprocessingSpec, letterbox, normalise, preprocess

CONTRACT_BLOCK = {
    "image_size": 224,
    "resize": "letterbox",
    "pad_value": 0.0,
    "value_range": [0.0, 1.0],
    "channels": 3,
    "layout": "NCHW",
    "dtype": "float32",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def test_normalise_replicates_gray_and_standardises_each_channel() -> None:
    pixels = np.array([[0.0, 1.0], [0.485, 0.5]], dtype=np.float32)
    x = normalise(pixels)

    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    for channel in range(3):
        expected = (pixels - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        np.testing.assert_allclose(x[channel], expected, rtol=1e-6)
    assert x[0, 1, 0] == pytest.approx(0.0, abs=1e-6)


def test_preprocess_is_letterbox_then_normalise() -> None:
    pixels = np.random.default_rng(0).random((90, 60)).astype(np.float32)
    x, box = preprocess(pixels, size=32)
    canvas, expected_box = letterbox(pixels, 32)

    assert box == expected_box
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, normalise(canvas), rtol=1e-6)
    # padding is black BEFORE normalisation
    assert x[0, 0, 0] == pytest.approx(-IMAGENET_MEAN[0] / IMAGENET_STD[0])


def test_spec_to_dict_is_the_contract_block_and_json_safe() -> None:
    spec = PreprocessingSpec()
    assert spec.to_dict() == CONTRACT_BLOCK
    assert json.loads(json.dumps(spec.to_dict())) == CONTRACT_BLOCK


def test_spec_round_trips_and_applies() -> None:
    spec = PreprocessingSpec.from_dict({**CONTRACT_BLOCK, "image_size": 32, "mean": [0.5, 0.5, 0.5]})
    assert PreprocessingSpec.from_dict(spec.to_dict()) == spec

    pixels = np.full((40, 20), 0.5, dtype=np.float32)
    x, box = spec.apply(pixels)
    assert x.shape == (3, 32, 32)
    assert x[:, 16, 16] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert box.size == 32


@pytest.mark.parametrize(
    "change",
    [{"resize": "stretch"}, {"channels": 1}, {"layout": "NHWC"}, {"std": [0.2, 0.0, 0.2]}, {"colour": "rgb"}],
)
def test_spec_refuses_what_it_cannot_honour(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="preprocessing"):
        PreprocessingSpec.from_dict({**CONTRACT_BLOCK, **change})
