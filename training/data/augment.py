"""Training augmentation on [0, 1] float (H, W) arrays, as released minus the horizontal flip.

Released MeDSLIP/MedKLIP pretraining: RandomResizedCrop(S, scale=(0.2, 1.0)) -> RandomHorizontalFlip ->
RandomAugment(N=2, M=7, [Identity, AutoContrast, Equalize, Brightness, Sharpness, ShearX/Y, TranslateX/Y,
Rotate]) -> normalise. The flip is dropped on purpose: it swaps the patient's left and right anatomy
(left_lung, retrocardiac, ...) while the labels stay put. Every transform is a dataclass with its own
`numpy.random.Generator` (MONAI's Randomizable pattern); the dataset reseeds it per sample from
(seed, epoch, index), so results do not depend on worker count and resume is exact.

Geometric ops apply the same parameters to masks (K, H, W) (nearest-neighbour, so they stay binary);
photometric ops touch the image only. Both transforms are built from the bundle's `PreprocessingSpec`
(`transforms_from_spec`, as open_clip builds train and eval transforms from one config): they open with
its washed-out stretch and end with its normalisation, and the eval transform IS `spec.apply`, so
training, evaluation, export and serving read one definition of the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from app.contract.imaging import PreprocessingSpec, letterbox, resize

FloatArray = np.ndarray  # float32 (H, W) in [0, 1] or (K, H, W) masks
Pair = tuple[np.ndarray, np.ndarray | None]  # (image, masks or None)


def _seed_children(seed: int | Sequence[int], count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(count)]


@dataclass
class RandomResizedCrop:
    """Crop a random area fraction in `scale` with aspect in `ratio`, then resize to (size, size)."""

    size: int
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rng: np.random.Generator = field(default_factory=np.random.default_rng, repr=False)

    def set_random_state(self, seed: int | Sequence[int]) -> None:
        self.rng = np.random.default_rng(seed)

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) sampled as torchvision does (10 tries, then the centred largest crop)."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * self.rng.uniform(*self.scale)
            aspect = math.exp(self.rng.uniform(*log_ratio))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(self.rng.integers(0, height - h + 1))
                left = int(self.rng.integers(0, width - w + 1))
                return top, left, h, w
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side, side

    def __call__(self, image: FloatArray, masks: FloatArray | None) -> tuple[FloatArray, FloatArray | None]:
        top, left, h, w = self.crop_box(*image.shape)
        out = resize(image[top : top + h, left : left + w], (self.size, self.size))
        if masks is None:
            return out.astype(np.float32), None
        out_masks = np.stack(
            [resize(m[top : top + h, left : left + w], (self.size, self.size)) >= 0.5 for m in masks]
        ).astype(np.float32)
        return out.astype(np.float32), out_masks


def _affine(
    image: FloatArray, masks: FloatArray | None, matrix: np.ndarray, offset: np.ndarray
) -> tuple[FloatArray, FloatArray | None]:
    """Resample with output->input (row, col) mapping; outside pixels are 0 (black, like padding)."""
    out = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    if masks is None:
        return np.clip(out, 0.0, 1.0).astype(np.float32), None
    out_masks = np.stack(
        [
            ndimage.affine_transform(m, matrix, offset=offset, order=0, mode="constant", cval=0.0)
            for m in masks
        ]
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32), out_masks.astype(np.float32)


def _centred(image: FloatArray, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse matrix and offset of a (row, col) linear map `forward` about the image centre."""
    centre = (np.array(image.shape[-2:], dtype=np.float64) - 1) / 2
    inverse = np.linalg.inv(forward)
    return inverse, centre - inverse @ centre


# Each op: (image, masks or None, level in [-1, 1]) -> (image, masks); level = signed magnitude / 10.
Op = Callable[[FloatArray, FloatArray | None, float], tuple[FloatArray, FloatArray | None]]


@dataclass
class RandAugment:
    """Apply `num_ops` ops drawn uniformly from the set, each at `magnitude`/10 of its maximum, random sign.

    Maxima are chosen small for radiographs: the geometry must stay anatomically plausible.
    """

    num_ops: int = 2
    magnitude: float = 7.0
    max_rotate_deg: float = 10.0
    max_translate: float = 0.1  # fraction of the side
    max_shear: float = 0.15  # tan of the shear angle
    max_brightness: float = 0.25  # additive change of the mean level
    max_contrast: float = 0.3  # multiplicative change around the mean
    max_gamma: float = 0.3  # gamma in [1 - g, 1 + g]
    max_sharpness: float = 0.9  # blend towards (positive) or away from (negative) a blurred copy
    rng: np.random.Generator = field(default_factory=np.random.default_rng, repr=False)

    def set_random_state(self, seed: int | Sequence[int]) -> None:
        self.rng = np.random.default_rng(seed)

    def ops(self) -> dict[str, Op]:
        """Name -> op; 'identity' keeps the released chance of leaving an image unchanged."""
        return {
            "identity": lambda img, m, level: (img, m),
            "autocontrast": lambda img, m, level: (self._autocontrast(img), m),
            "equalize": lambda img, m, level: (self._equalize(img), m),
            "brightness": lambda img, m, level: (np.clip(img + level * self.max_brightness, 0, 1), m),
            "contrast": lambda img, m, level: (self._contrast(img, level), m),
            "gamma": lambda img, m, level: (np.power(img, 1.0 + level * self.max_gamma), m),
            "sharpness": lambda img, m, level: (self._sharpness(img, level), m),
            "rotate": self._rotate,
            "shear_x": lambda img, m, level: self._shear(img, m, level, rows=False),
            "shear_y": lambda img, m, level: self._shear(img, m, level, rows=True),
            "translate_x": lambda img, m, level: self._translate(img, m, 0.0, level),
            "translate_y": lambda img, m, level: self._translate(img, m, level, 0.0),
        }

    @staticmethod
    def _autocontrast(img: FloatArray) -> FloatArray:
        low, high = np.percentile(img, (1, 99))
        return np.clip((img - low) / max(high - low, 1e-6), 0, 1)

    @staticmethod
    def _equalize(img: FloatArray) -> FloatArray:
        hist, edges = np.histogram(img, bins=256, range=(0.0, 1.0))
        cdf = np.cumsum(hist).astype(np.float64)
        cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1.0)
        return np.interp(img, edges[1:], cdf)

    def _contrast(self, img: FloatArray, level: float) -> FloatArray:
        mean = float(img.mean())
        return np.clip(mean + (img - mean) * (1.0 + level * self.max_contrast), 0, 1)

    def _sharpness(self, img: FloatArray, level: float) -> FloatArray:
        blurred = ndimage.uniform_filter(img, size=3)
        return np.clip(img + level * self.max_sharpness * (img - blurred), 0, 1)

    def _rotate(self, img: FloatArray, m: FloatArray | None, level: float) -> Pair:
        angle = math.radians(level * self.max_rotate_deg)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        return _affine(img, m, *_centred(img, rotation))

    def _shear(
        self, img: FloatArray, m: FloatArray | None, level: float, rows: bool
    ) -> tuple[FloatArray, FloatArray | None]:
        amount = level * self.max_shear
        forward = np.array([[1.0, amount], [0.0, 1.0]]) if rows else np.array([[1.0, 0.0], [amount, 1.0]])
        return _affine(img, m, *_centred(img, forward))

    def _translate(
        self, img: FloatArray, m: FloatArray | None, dy: float, dx: float
    ) -> tuple[FloatArray, FloatArray | None]:
        shift = np.array([dy * img.shape[0], dx * img.shape[1]]) * self.max_translate
        return _affine(img, m, np.eye(2), -shift)

    def __call__(self, image: FloatArray, masks: FloatArray | None) -> tuple[FloatArray, FloatArray | None]:
        ops = self.ops()
        names = sorted(ops)
        for _ in range(self.num_ops):
            name = names[int(self.rng.integers(len(names)))]
            sign = 1.0 if self.rng.random() < 0.5 else -1.0
            image, masks = ops[name](image, masks, sign * self.magnitude / 10.0)
        return image.astype(np.float32), masks


@dataclass
class TrainTransform:
    """Stretch -> RandomResizedCrop -> RandAugment -> normalise, per `spec`: (H, W) [0,1] -> (3, S, S)."""

    spec: PreprocessingSpec
    crop_scale: tuple[float, float] = (0.2, 1.0)
    num_ops: int = 2
    magnitude: float = 7.0

    def __post_init__(self) -> None:
        self.crop = RandomResizedCrop(self.spec.image_size, scale=self.crop_scale)
        self.augment = RandAugment(num_ops=self.num_ops, magnitude=self.magnitude)

    def set_random_state(self, seed: int | Sequence[int]) -> None:
        """Seed each child transform from an independent SeedSequence child."""
        crop_rng, augment_rng = _seed_children(seed, 2)
        self.crop.rng, self.augment.rng = crop_rng, augment_rng

    def __call__(self, image: FloatArray, masks: FloatArray | None = None) -> Pair:
        image, _ = self.spec.stretch(image)  # (H, W): before any geometry, as serving does
        image, masks = self.crop(image, masks)
        image, masks = self.augment(image, masks)
        return self.spec.normalise(image), masks  # (3, S, S), (K, S, S) | None


@dataclass
class EvalTransform:
    """`spec.apply` (the service's preprocessing), masks letterboxed alongside and kept binary."""

    spec: PreprocessingSpec

    def set_random_state(self, seed: int | Sequence[int]) -> None:
        """Nothing random; present so datasets can treat both transforms alike."""

    def __call__(self, image: FloatArray, masks: FloatArray | None = None) -> Pair:
        tensor = self.spec.apply(image).tensor  # (3, S, S)
        if masks is None:
            return tensor, None
        size = self.spec.image_size
        out_masks = np.stack([letterbox(m, size)[0] >= 0.5 for m in masks]).astype(np.float32)
        return tensor, out_masks  # (3, S, S), (K, S, S)


def transforms_from_spec(
    spec: PreprocessingSpec,
    *,
    train: bool,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    num_ops: int = 2,
    magnitude: float = 7.0,
) -> TrainTransform | EvalTransform:
    """The training (augmented) or evaluation transform of `spec`; the augmentation strength is the
    training config's, everything about the pixels is the spec's."""
    if not train:
        return EvalTransform(spec)
    return TrainTransform(spec, crop_scale=crop_scale, num_ops=num_ops, magnitude=magnitude)
