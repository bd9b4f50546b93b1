"""Resizing and the letterbox transform, with its exact inverse.

The model sees a square image: the longer side is scaled to ``size`` and the shorter side is padded
symmetrically with black. Heat maps, boxes and points produced at model resolution must land on the
right pixels of the ORIGINAL image, so the inverse lives next to the forward transform and both use
the same rounded content size.

A codec may hand back the image at a power-of-two reduction ``f`` (JPEG 2000 resolution levels, JPEG
DCT scaling): ``ceil(H / f) x ceil(W / f)`` pixels whose position on the original grid the codec
defines (``Reduction``). The letterbox is then still fitted to the ORIGINAL ``H x W`` and the reduced
pixels are resampled from the exact original extent, so the geometry, and every result mapped back
through it, is the one of the original image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["NO_REDUCTION", "Letterbox", "Reduction", "letterbox", "resize"]


def _resample_filter(src_hw: tuple[float, float], dst_hw: tuple[int, int]) -> Image.Resampling:
    """Area averaging (BOX) when shrinking, bilinear when enlarging: no aliasing, no blockiness."""
    shrinking = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR


#: Sources with at most this many rows and columns are ENLARGED by two small matrix products instead of
#: Pillow: a 14 x 14 heat map grid grows to a 2k film in a fraction of Pillow's time (one per finding
#: of every /ground answer), with Pillow's own bilinear weights.
_MATRIX_UPSCALE_MAX_SIDE = 32


def _bilinear_weights(start: float, stop: float, in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of Pillow's BILINEAR resampling of source span [start, stop) onto
    `out_size` pixels when enlarging: the triangle filter of support 1 around each output pixel's
    centre, clipped to the source and renormalised (Pillow's `precompute_coeffs`)."""
    centres = start + (np.arange(out_size, dtype=np.float64)[:, None] + 0.5) * (stop - start) / out_size
    taps = np.arange(in_size, dtype=np.float64)[None, :] + 0.5  # source pixel centres
    weights = np.clip(1.0 - np.abs(taps - centres), 0.0, None)  # (out_size, in_size)
    totals = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)


def _enlarge_small(
    source: np.ndarray, size_hw: tuple[int, int], box: tuple[float, float, float, float]
) -> np.ndarray:
    """Pillow's BILINEAR enlargement of a small (h, w) `source` from `box` to `size_hw`, as
    rows (H, h) @ source (h, w) @ columns (w, W)."""
    rows = _bilinear_weights(box[1], box[3], source.shape[0], size_hw[0])  # (H, h)
    columns = _bilinear_weights(box[0], box[2], source.shape[1], size_hw[1])  # (W, w)
    left = (rows @ source.astype(np.float64)).astype(np.float32)  # (H, w), small: exact in float64
    return left @ columns.T.astype(np.float32)  # (H, W), float32: the big product is half the bytes


def _resize_float(
    pixels: np.ndarray, size_hw: tuple[int, int], box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """Resize a 2-D float array with Pillow's 32-bit float mode, optionally from a sub-box.

    ``box`` = (x0, y0, x1, y1) in source pixel-edge coordinates; it may be fractional, which is what
    lets the letterbox inverse crop the padding and resize in a single resampling.
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) array, got shape {pixels.shape}")
    height, width = int(size_hw[0]), int(size_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {size_hw}")
    source = np.ascontiguousarray(pixels, dtype=np.float32)  # (H, W)
    if box is None and source.shape == (height, width):
        return source.copy()
    src_hw = (box[3] - box[1], box[2] - box[0]) if box is not None else (source.shape[0], source.shape[1])
    resample = _resample_filter(src_hw, (height, width))
    if resample == Image.Resampling.BILINEAR and max(source.shape) <= _MATRIX_UPSCALE_MAX_SIDE:
        full = (0.0, 0.0, float(source.shape[1]), float(source.shape[0]))
        return _enlarge_small(source, (height, width), box if box is not None else full)
    image = Image.fromarray(source, mode="F")
    resized = image.resize((width, height), resample=resample, box=box)
    return np.asarray(resized, dtype=np.float32).copy()  # (height, width)


def resize(pixels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a float (H, W) image to ``size_hw`` = (height, width); antialiased when shrinking."""
    return _resize_float(pixels, size_hw)


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterbox transform: enough to map model-space results back to the source.

    ``scale`` = size / max(src_h, src_w). The content occupies ``content_h x content_w`` pixels
    starting at (``pad_y``, ``pad_x``); the rest of the ``size x size`` canvas is padding.
    Point coordinates are continuous pixel-edge coordinates: (0, 0) is the top-left corner of the
    top-left pixel and (W, H) the bottom-right corner of the image.
    """

    scale: float
    pad_x: int
    pad_y: int
    src_h: int
    src_w: int
    size: int

    @classmethod
    def fit(cls, src_h: int, src_w: int, size: int) -> Letterbox:
        """The letterbox that fits a ``src_h x src_w`` image into a ``size x size`` square."""
        if src_h < 1 or src_w < 1 or size < 1:
            raise ValueError(f"sizes must be positive, got src=({src_h}, {src_w}) size={size}")
        scale = size / max(src_h, src_w)
        content_h = _content_length(src_h, scale, size)
        content_w = _content_length(src_w, scale, size)
        return cls(
            scale=scale,
            pad_x=(size - content_w) // 2,
            pad_y=(size - content_h) // 2,
            src_h=src_h,
            src_w=src_w,
            size=size,
        )

    @property
    def content_h(self) -> int:
        """Rows of the resized image inside the canvas."""
        return _content_length(self.src_h, self.scale, self.size)

    @property
    def content_w(self) -> int:
        """Columns of the resized image inside the canvas."""
        return _content_length(self.src_w, self.scale, self.size)

    def point_to_letterbox(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of the source image into the ``size x size`` canvas."""
        return (
            self.pad_x + x * self.content_w / self.src_w,
            self.pad_y + y * self.content_h / self.src_h,
        )

    def point_to_original(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of the ``size x size`` canvas back to source-image coordinates."""
        return (
            (x - self.pad_x) * self.src_w / self.content_w,
            (y - self.pad_y) * self.src_h / self.content_h,
        )

    def box_to_letterbox(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Map (x0, y0, x1, y1) from the source image into the canvas."""
        x0, y0 = self.point_to_letterbox(box[0], box[1])
        x1, y1 = self.point_to_letterbox(box[2], box[3])
        return x0, y0, x1, y1

    def box_to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Map (x0, y0, x1, y1) from the canvas to the source image, clipped to its bounds.

        Clipping matters because a box predicted partly over the padding has no source pixels there.
        """
        x0, y0 = self.point_to_original(box[0], box[1])
        x1, y1 = self.point_to_original(box[2], box[3])
        return (
            float(np.clip(x0, 0, self.src_w)),
            float(np.clip(y0, 0, self.src_h)),
            float(np.clip(x1, 0, self.src_w)),
            float(np.clip(y1, 0, self.src_h)),
        )

    def to_original(self, map_: np.ndarray) -> np.ndarray:
        """Undo padding and resize of a map covering the canvas: (h, w) -> (src_h, src_w).

        ``map_`` may have any resolution covering the full canvas (e.g. the 14 x 14 attention grid of
        a 224 canvas); the content region is cropped at its exact, possibly fractional, position and
        resampled once, so no half-cell shift is introduced.
        """
        if map_.ndim != 2:
            raise ValueError(f"expected a 2-D (h, w) map, got shape {map_.shape}")
        map_h, map_w = map_.shape
        cell_y = map_h / self.size  # map rows per canvas pixel
        cell_x = map_w / self.size
        x0, x1 = self.pad_x * cell_x, (self.pad_x + self.content_w) * cell_x
        y0, y1 = self.pad_y * cell_y, (self.pad_y + self.content_h) * cell_y
        # Keep only the cells that overlap the content, so that the resampling filter cannot pull
        # pure-padding values into the border of the source image.
        col0, col1 = int(np.floor(x0)), int(np.ceil(x1))
        row0, row1 = int(np.floor(y0)), int(np.ceil(y1))
        content = map_[row0:row1, col0:col1]  # (rows overlapping content, cols overlapping content)
        crop = (x0 - col0, y0 - row0, x1 - col0, y1 - row0)
        return _resize_float(content, (self.src_h, self.src_w), box=crop)  # (src_h, src_w)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (e.g. to return with heat maps so a client can place them)."""
        return {
            "scale": self.scale,
            "pad_x": self.pad_x,
            "pad_y": self.pad_y,
            "src_h": self.src_h,
            "src_w": self.src_w,
            "size": self.size,
        }


def _content_length(src_len: int, scale: float, size: int) -> int:
    """Rounded resized length, at least 1 and at most ``size`` (the single rounding rule)."""
    return int(min(size, max(1, round(src_len * scale))))


@dataclass(frozen=True)
class Reduction:
    """Where the pixels of an image decoded at 1/``factor`` sit on the original pixel grid.

    Reduced pixel ``i`` is centred on original pixel ``factor * i + offset`` (pixel indices; in the
    module's pixel-edge coordinates its centre is at ``factor * i + offset + 0.5``):

    * JPEG DCT scaling returns block means: pixel ``i`` covers ``[f*i, f*i + f)``, ``offset = (f-1)/2``;
    * JPEG 2000 resolution levels return the wavelet's low-pass band, centred on the even samples at
      every level: ``offset = 0`` (measured: assuming block means instead shifts the 224 px model
      input by 1.5 original pixels at 1/4 and doubles its mean difference from the full decode).
    """

    factor: int = 1
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.factor < 1 or not 0.0 <= self.offset < self.factor:
            raise ValueError(f"invalid reduction: factor {self.factor}, offset {self.offset}")

    @classmethod
    def dct(cls, factor: int) -> Reduction:
        """JPEG DCT scaling by 1/``factor``: block means."""
        return cls(factor, (factor - 1) / 2.0)

    @classmethod
    def wavelet(cls, factor: int) -> Reduction:
        """JPEG 2000 decoded ``log2(factor)`` resolution levels down: low-pass samples on the even grid."""
        return cls(factor, 0.0)

    def shape(self, rows: int, columns: int) -> tuple[int, int]:
        """(rows, columns) of a ``rows x columns`` image decoded at this reduction: ceil of each."""
        return -(-rows // self.factor), -(-columns // self.factor)

    def source_box(self, rows: int, columns: int) -> tuple[float, float, float, float] | None:
        """The original image's extent (0, 0, columns, rows) in reduced pixel-edge coordinates, as
        (x0, y0, x1, y1); None when there is no reduction."""
        if self.factor == 1 and self.offset == 0.0:
            return None

        def reduced(edge: float) -> float:  # original pixel-edge coordinate -> reduced one
            return (edge - 0.5 - self.offset) / self.factor + 0.5

        return reduced(0.0), reduced(0.0), reduced(float(columns)), reduced(float(rows))


#: Pixels decoded at full resolution.
NO_REDUCTION = Reduction()


def letterbox(
    pixels: np.ndarray,
    size: int,
    pad_value: float = 0.0,
    *,
    source_hw: tuple[int, int] | None = None,
    reduction: Reduction = NO_REDUCTION,
) -> tuple[np.ndarray, Letterbox]:
    """Scale the longer side of a (H, W) image to ``size`` and pad to a square with ``pad_value``.

    ``source_hw`` = (H, W) of the original image when ``pixels`` are that image decoded at a
    ``reduction`` (then ``pixels`` must be ``reduction.shape(H, W)``): the letterbox, and so every
    mapping back to the original, is computed for ``source_hw``, and the content is resampled from
    the original extent in reduced coordinates (``reduction.source_box``).
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) array, got shape {pixels.shape}")
    src_h, src_w = source_hw if source_hw is not None else (int(pixels.shape[0]), int(pixels.shape[1]))
    expected = reduction.shape(src_h, src_w)
    if tuple(pixels.shape) != expected:
        raise ValueError(
            f"pixels of shape {pixels.shape} are not a {src_h} x {src_w} image at 1/{reduction.factor} "
            f"(expected {expected})"
        )
    box = Letterbox.fit(src_h, src_w, size)
    crop = reduction.source_box(src_h, src_w)
    if crop is not None and (crop[2] > pixels.shape[1] or crop[3] > pixels.shape[0]):
        # Low-pass samples on the even grid: the original extent ends up to half a reduced pixel
        # past the last one; the edge sample is repeated there (as the codec's own extension does).
        pixels = np.pad(pixels, ((0, 1), (0, 1)), mode="edge")  # (h + 1, w + 1)
    content = _resize_float(pixels, (box.content_h, box.content_w), box=crop)  # (content_h, content_w)
    canvas = np.full((size, size), pad_value, dtype=np.float32)  # (size, size)
    canvas[box.pad_y : box.pad_y + box.content_h, box.pad_x : box.pad_x + box.content_w] = content
    return canvas, box
