"""From decoded [0, 1] pixels to the model input tensor, described by a serialisable spec.

The same ``PreprocessingSpec`` is written into a bundle's ``metadata.json`` by the exporter and read
back by the service, so training, export and serving cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from app.contract.imaging.errors import CorruptImageError
from app.contract.imaging.geometry import NO_REDUCTION, Letterbox, Reduction, letterbox
from app.contract.imaging.info import DecodedImage
from app.contract.imaging.rendering_checks import all_finite, gray_range

__all__ = [
    "DECODE_MARGIN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WASHED_OUT_SPAN",
    "Preprocessed",
    "PreprocessingSpec",
    "normalise",
    "preprocess",
    "stretch_washed_out",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Span of the 0.5-99.5 percentiles below which a film counts as washed out. Measured on the shared
#: data: 4 of 145 JSRT films span < 0.06 (8-bit exports written without a window), while the lowest
#: covid-chestxray and Kermany films span more than 0.25 and are left alone.
WASHED_OUT_SPAN = 0.25
#: A codec may decode at a reduced resolution only while the long side stays at least this many times
#: the model's input size: the letterbox then still shrinks (area averaging over >= 2 x 2 pixels),
#: never enlarges, and the codec's own reduction filter is not what the model sees alone.
DECODE_MARGIN = 2


def stretch_washed_out(
    pixels_01: np.ndarray, min_span: float, known_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Stretch a washed-out (H, W) [0, 1] film's 0.5-99.5 percentile range to [0, 1]; others unchanged.

    A film exported without its window fills a sliver of the gray scale and looks blank to the model
    (it segmented no heart at all on such JSRT films); stretching restores the anatomy. Flat images
    (span 0) are returned as they are: there is nothing to stretch. ``known_range``: these pixels'
    ``gray_range``, when the decoder already took it (``DecodedImage.gray_range``).
    """
    if min_span <= 0.0:
        return pixels_01
    low, high = known_range if known_range is not None else gray_range(pixels_01)
    span = high - low
    if span >= min_span or span <= 1e-6:
        return pixels_01
    return np.clip((pixels_01 - low) / span, 0.0, 1.0).astype(np.float32)  # (H, W)


def normalise(
    pixels_01: np.ndarray,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> np.ndarray:
    """Replicate a gray (H, W) image in [0, 1] to 3 channels and standardise each channel.

    ImageNet statistics because the image trunk was pre-trained on ImageNet RGB images.
    """
    if pixels_01.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) array, got shape {pixels_01.shape}")
    gray = pixels_01.astype(np.float32, copy=False)  # (H, W)
    mean_c = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)  # (3, 1, 1)
    std_c = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return ((gray[None, :, :] - mean_c) / std_c).astype(np.float32)  # (3, H, W)


def preprocess(
    pixels: np.ndarray,
    size: int = 224,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    pad_value: float = 0.0,
    washed_out_span: float = 0.0,
    source_hw: tuple[int, int] | None = None,
    reduction: Reduction = NO_REDUCTION,
) -> tuple[np.ndarray, Letterbox]:
    """Letterbox a (H, W) [0, 1] image to ``size`` and normalise it: returns ((3, size, size), box).

    The keyword form of ``PreprocessingSpec.apply`` (which it runs), for callers without a spec."""
    spec = PreprocessingSpec(
        image_size=size, pad_value=pad_value, mean=mean, std=std, washed_out_span=washed_out_span
    )
    prepared = spec.apply(pixels, source_hw=source_hw, reduction=reduction)
    return prepared.tensor, prepared.box


class Preprocessed(NamedTuple):
    """What ``PreprocessingSpec.apply`` made of a film, and the steps it took, in order (a response's
    ``input.steps`` lists them after the decoder's own)."""

    tensor: np.ndarray  # (3, S, S) float32, normalised
    box: Letterbox  # where the film sits in the S x S canvas, in ORIGINAL pixel coordinates
    steps: tuple[str, ...]


#: The step a response lists when the washed-out stretch fired.
STRETCH_STEP = "stretch washed-out gray range (0.5-99.5 percentiles) to [0, 1]"


@dataclass(frozen=True)
class PreprocessingSpec:
    """The ``preprocessing`` block of a bundle's metadata.json (see docs/contracts.md)."""

    image_size: int = 224
    resize: str = "letterbox"
    pad_value: float = 0.0
    value_range: tuple[float, float] = (0.0, 1.0)
    channels: int = 3
    layout: str = "NCHW"
    dtype: str = "float32"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: 0 (the default, for bundles that predate the key) disables the washed-out stretch; the exporter
    #: writes WASHED_OUT_SPAN, which training applies too.
    washed_out_span: float = 0.0

    def __post_init__(self) -> None:
        """Refuse specs this module cannot honour, so a bundle is rejected at load, not per request."""
        problems = []
        if self.image_size < 1:
            problems.append(f"image_size must be positive, got {self.image_size}")
        if self.resize != "letterbox":
            problems.append(f"resize must be 'letterbox', got {self.resize!r}")
        if tuple(self.value_range) != (0.0, 1.0):
            problems.append(f"value_range must be [0.0, 1.0], got {list(self.value_range)}")
        if self.channels != 3:
            problems.append(f"channels must be 3, got {self.channels}")
        if self.layout != "NCHW":
            problems.append(f"layout must be 'NCHW', got {self.layout!r}")
        if self.dtype != "float32":
            problems.append(f"dtype must be 'float32', got {self.dtype!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append("mean and std must have 3 values each")
        elif min(self.std) <= 0:
            problems.append("std values must be positive")
        if not 0.0 <= self.washed_out_span < 1.0:
            problems.append(f"washed_out_span must be in [0, 1), got {self.washed_out_span}")
        if problems:
            raise ValueError("unsupported preprocessing spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON form, exactly the keys of the metadata ``preprocessing`` block."""
        return {
            "image_size": self.image_size,
            "resize": self.resize,
            "pad_value": self.pad_value,
            "value_range": [float(v) for v in self.value_range],
            "channels": self.channels,
            "layout": self.layout,
            "dtype": self.dtype,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "washed_out_span": float(self.washed_out_span),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingSpec:
        """Parse a metadata ``preprocessing`` block; missing keys take the defaults, unknown keys fail."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {unknown}")
        defaults = cls()
        mean = tuple(float(v) for v in data.get("mean", defaults.mean))
        std = tuple(float(v) for v in data.get("std", defaults.std))
        value_range = tuple(float(v) for v in data.get("value_range", defaults.value_range))
        if len(mean) != 3 or len(std) != 3 or len(value_range) != 2:
            raise ValueError("unsupported preprocessing spec: mean/std need 3 values, value_range 2")
        return cls(
            image_size=int(data.get("image_size", defaults.image_size)),
            resize=str(data.get("resize", defaults.resize)),
            pad_value=float(data.get("pad_value", defaults.pad_value)),
            value_range=(value_range[0], value_range[1]),
            channels=int(data.get("channels", defaults.channels)),
            layout=str(data.get("layout", defaults.layout)),
            dtype=str(data.get("dtype", defaults.dtype)),
            mean=(mean[0], mean[1], mean[2]),
            std=(std[0], std[1], std[2]),
            washed_out_span=float(data.get("washed_out_span", defaults.washed_out_span)),
        )

    @classmethod
    def trained(cls, image_size: int) -> PreprocessingSpec:
        """The spec of a model trained by this project today (training applies the same stretch)."""
        return cls(image_size=image_size, washed_out_span=WASHED_OUT_SPAN)

    @property
    def decode_long_side(self) -> int:
        """The fewest pixels a reduced-resolution decode may leave on the long side for this input."""
        return DECODE_MARGIN * self.image_size

    def stretch(
        self, pixels: np.ndarray, known_range: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """The spec's first step on a (H, W) [0, 1] film, before any geometry (training crops after it,
        serving letterboxes after it): (pixels, (STRETCH_STEP,) when the washed-out stretch fired).
        ``known_range``: the pixels' gray range when the decoder took it already."""
        stretched = stretch_washed_out(pixels, self.washed_out_span, known_range)
        return stretched, (() if stretched is pixels else (STRETCH_STEP,))

    def normalise(self, canvas: np.ndarray) -> np.ndarray:
        """The spec's last step: a (S, S) [0, 1] canvas -> (3, S, S) with this spec's mean and std."""
        return normalise(canvas, self.mean, self.std)

    @property
    def normalise_step(self) -> str:
        if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD):
            return "imagenet normalise"
        return f"normalise (mean {list(self.mean)}, std {list(self.std)})"

    def apply(
        self,
        pixels: np.ndarray,
        *,
        source_hw: tuple[int, int] | None = None,
        reduction: Reduction = NO_REDUCTION,
        known_range: tuple[float, float] | None = None,
    ) -> Preprocessed:
        """Preprocess a (H, W) [0, 1] image exactly as this spec says: stretch (washed-out films only),
        letterbox, normalise -> ((3, S, S), box, steps).

        ``source_hw``/``reduction``: the original size of pixels decoded at a reduced resolution, so
        the box is that of the original image (see ``letterbox``). ``known_range``: the pixels' gray
        range when the decoder took it already (``DecodedImage.gray_range``). The model input must be
        finite (a NaN pixel comes back as NaN scores): anything else is refused as ``corrupt_image``."""
        stretched, steps = self.stretch(pixels, known_range)
        canvas, box = letterbox(
            stretched, self.image_size, pad_value=self.pad_value, source_hw=source_hw, reduction=reduction
        )  # (S, S)
        tensor = self.normalise(canvas)  # (3, S, S)
        if not all_finite(tensor):
            raise CorruptImageError("the preprocessed image holds values that are not finite numbers")
        return Preprocessed(tensor, box, (*steps, f"letterbox to {self.image_size}", self.normalise_step))

    def apply_decoded(self, image: DecodedImage) -> Preprocessed:
        """`apply` to a decoded image with what the decoder knows about it: its original size, its
        reduction and the gray range its blank check took (the serving path, and benchmarks of it)."""
        return self.apply(
            image.pixels,
            source_hw=image.source_shape,
            reduction=image.reduction,
            known_range=image.gray_range,
        )
