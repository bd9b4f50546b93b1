"""Augmentation: never mirrors left/right, reproducible under a seed, masks follow the image."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract.imaging import WASHED_OUT_SPAN, PreprocessingSpec, preprocess
from training.data.augment import (
    EvalTransform,
    RandAugment,
    RandomResizedCrop,
    TrainTransform,
    transforms_from_spec,
)

SPEC = PreprocessingSpec(image_size=64)  # no washed-out stretch: these images are synthetic


def _left_marked_image(size: int = 96) -> np.ndarray:
    """Mid-gray image with a bright block in the LEFT third of the image (columns 5..25)."""
    image = np.full((size, size), 0.4, dtype=np.float32)
    image[30:66, 5:25] = 1.0
    return image


def _bright_column_centre(x: np.ndarray) -> float:
    """Column centre of mass of the brightest pixels of a normalised (3, S, S) tensor."""
    gray = x[0]
    bright = gray >= gray.max() - 0.1 * (gray.max() - gray.min())
    return float(np.nonzero(bright)[1].mean())


@pytest.mark.parametrize("seed", range(12))
def test_train_transform_never_mirrors(seed: int) -> None:
    transform = TrainTransform(SPEC, crop_scale=(0.9, 1.0), num_ops=2, magnitude=10.0)
    transform.set_random_state(seed)
    x, _ = transform(_left_marked_image())
    assert x.shape == (3, 64, 64)
    assert _bright_column_centre(x) < 64 / 2, "the left mark moved to the right half: a flip happened"


def test_left_mask_stays_on_the_left_with_geometry() -> None:
    image = _left_marked_image()
    masks = (image[None] > 0.9).astype(np.float32)  # (1, H, W): the mark itself
    for seed in range(10):
        transform = TrainTransform(SPEC, crop_scale=(0.6, 1.0), num_ops=3, magnitude=10.0)
        transform.set_random_state(seed)
        _x, out = transform(image, masks)
        assert out is not None and out.shape == (1, 64, 64)
        assert set(np.unique(out)) <= {0.0, 1.0}
        if out.sum() > 0:
            assert np.nonzero(out[0])[1].mean() < 32


def test_same_seed_same_output_and_different_seed_differs() -> None:
    image = np.random.default_rng(0).random((80, 100)).astype(np.float32)
    first, second, other = TrainTransform(SPEC), TrainTransform(SPEC), TrainTransform(SPEC)
    first.set_random_state((1, 0, 5))
    second.set_random_state((1, 0, 5))
    other.set_random_state((1, 0, 6))
    a, _ = first(image)
    b, _ = second(image)
    c, _ = other(image)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_resized_crop_respects_the_area_range() -> None:
    crop = RandomResizedCrop(32, scale=(0.2, 1.0))
    crop.set_random_state(3)
    for _ in range(50):
        top, left, h, w = crop.crop_box(200, 300)
        assert top >= 0 and top + h <= 200 and left >= 0 and left + w <= 300
        assert 0.15 <= h * w / (200 * 300) <= 1.05


def test_every_randaugment_op_keeps_range_and_shape() -> None:
    image = np.random.default_rng(1).random((40, 50)).astype(np.float32)
    masks = np.zeros((2, 40, 50), dtype=np.float32)
    masks[0, 10:20, 5:15] = 1.0
    augment = RandAugment(magnitude=10.0)
    for name, op in augment.ops().items():
        for level in (-1.0, 1.0):
            out, out_masks = op(image, masks, level)
            assert out.shape == image.shape, name
            assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, name
            assert out_masks is not None and out_masks.shape == masks.shape, name


def test_eval_transform_is_the_service_preprocess() -> None:
    image = np.random.default_rng(2).random((70, 90)).astype(np.float32)
    x, _ = EvalTransform(SPEC)(image)
    expected, _ = preprocess(image, size=64)
    np.testing.assert_array_equal(x, expected)
    masks = np.ones((1, 70, 90), dtype=np.float32)
    _, boxed = EvalTransform(SPEC)(image, masks)
    assert boxed is not None and boxed.shape == (1, 64, 64)
    assert boxed[0, 0].sum() == 0 and boxed[0, 32].sum() == 64  # letterbox pad rows are background


def test_both_transforms_open_with_the_specs_washed_out_stretch() -> None:
    """A film filling a sliver of the gray scale reaches the model stretched in training as in serving:
    the stretch is the spec's, applied by both transforms before any geometry."""
    washed = 0.9 + 0.05 * np.random.default_rng(3).random((80, 80)).astype(np.float32)  # 0.90..0.95
    spec = PreprocessingSpec(image_size=64, washed_out_span=WASHED_OUT_SPAN)
    evaluation = transforms_from_spec(spec, train=False)
    train = transforms_from_spec(spec, train=True, crop_scale=(0.9, 1.0), num_ops=1, magnitude=1.0)
    train.set_random_state(0)
    x_eval, _ = evaluation(washed)
    np.testing.assert_array_equal(x_eval, spec.apply(washed).tensor)
    x_train, _ = train(washed)
    assert np.ptp(x_eval[0]) > 3.0 and np.ptp(x_train[0]) > 3.0  # ~[0, 1] / 0.229, not a sliver
    plain, _ = transforms_from_spec(SPEC, train=False)(washed)
    assert np.ptp(plain[0]) < 0.5
    assert isinstance(train, TrainTransform) and isinstance(evaluation, EvalTransform)
