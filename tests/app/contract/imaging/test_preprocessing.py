"""Normalisation, the one-call preprocess, and the bundle's preprocessing spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WASHED_OUT_SPAN,
    PreprocessingSpec,
    decode_path,
    letterbox,
    normalise,
    preprocess,
    stretch_washed_out,
)
from app.contract.imaging.preprocessing import STRETCH_STEP

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
    "washed_out_span": 0.0,
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
    x, box, _ = spec.apply(pixels)
    assert x.shape == (3, 32, 32)
    assert x[:, 16, 16] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert box.size == 32


@pytest.mark.parametrize(
    "change",
    [{"resize": "stretch"}, {"channels": 1}, {"layout": "NHWC"}, {"std": [0.2, 0.0, 0.2]}, {"colour": "rgb"},
     {"washed_out_span": 1.0}, {"washed_out_span": -0.1}],
)
def test_spec_refuses_what_it_cannot_honour(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="preprocessing"):
        PreprocessingSpec.from_dict({**CONTRACT_BLOCK, **change})


def _washed_out_film() -> np.ndarray:
    """A gradient squeezed into the top 6 % of the gray scale, as an unwindowed 8-bit export looks."""
    ramp = np.linspace(0.0, 1.0, 64 * 48, dtype=np.float32).reshape(64, 48)
    return (0.94 + 0.06 * ramp).astype(np.float32)  # (H, W)


def test_a_washed_out_film_is_stretched_to_the_full_range() -> None:
    stretched = stretch_washed_out(_washed_out_film(), WASHED_OUT_SPAN)
    low, high = np.percentile(stretched, [0.5, 99.5])
    assert low == pytest.approx(0.0, abs=1e-3) and high == pytest.approx(1.0, abs=1e-3)
    assert stretched.min() >= 0.0 and stretched.max() <= 1.0
    assert np.all(np.diff(stretched.ravel()) >= 0)  # gray order kept: a stretch, not a remap


@pytest.mark.parametrize("pixels", [
    np.random.default_rng(1).random((32, 32)).astype(np.float32),  # well exposed: full range
    np.full((32, 32), 0.7, dtype=np.float32),  # flat: nothing to stretch, no division by zero
])
def test_other_films_are_left_exactly_as_they_are(pixels: np.ndarray) -> None:
    assert stretch_washed_out(pixels, WASHED_OUT_SPAN) is pixels


def test_the_spec_stretches_only_when_the_bundle_asks() -> None:
    film = _washed_out_film()
    off = PreprocessingSpec(image_size=32)
    on = PreprocessingSpec(image_size=32, washed_out_span=WASHED_OUT_SPAN)
    np.testing.assert_array_equal(off.apply(film)[0], preprocess(film, size=32)[0])
    np.testing.assert_array_equal(on.apply(film)[0], preprocess(stretch_washed_out(film, 0.25), size=32)[0])
    assert PreprocessingSpec.from_dict(on.to_dict()) == on


def test_apply_lists_the_steps_it_took() -> None:
    film, normal = _washed_out_film(), np.random.default_rng(1).random((32, 32)).astype(np.float32)
    on = PreprocessingSpec(image_size=32, washed_out_span=WASHED_OUT_SPAN)
    assert on.apply(film).steps == (STRETCH_STEP, "letterbox to 32", "imagenet normalise")
    assert on.apply(normal).steps == ("letterbox to 32", "imagenet normalise")
    custom = PreprocessingSpec(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    normalised = "normalise (mean [0.5, 0.5, 0.5], std [0.25, 0.25, 0.25])"
    assert custom.apply(film).steps == ("letterbox to 32", normalised)
    assert float(custom.apply(np.full((32, 32), 0.75, np.float32)).tensor.max()) == pytest.approx(1.0)


def test_real_washed_out_jsrt_film_gets_its_contrast_back(shared_data: Path) -> None:
    """JPCLN037 (JSRT) is stored with every pixel in 237..255; JPCLN006 is exposed normally."""
    washed = decode_path(shared_data / "jsrt-scr" / "images" / "JPCLN037.jpg").pixels
    normal = decode_path(shared_data / "jsrt-scr" / "images" / "JPCLN006.jpg").pixels
    assert np.ptp(np.percentile(washed, [0.5, 99.5])) < 0.1
    assert np.ptp(np.percentile(stretch_washed_out(washed, WASHED_OUT_SPAN), [0.5, 99.5])) > 0.99
    assert stretch_washed_out(normal, WASHED_OUT_SPAN) is normal
