"""What a decoder hands back: the pixels plus a record of where they came from and what was done."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from app.contract.imaging.geometry import NO_REDUCTION, Reduction

__all__ = ["DecodedImage", "ImageFormat", "ImageInfo"]

ImageFormat = Literal["dicom", "png", "jpeg"]


@dataclass
class ImageInfo:
    """Non-identifying facts about a decoded image, safe to log and to return in API responses.

    ``steps`` lists, in order, every pixel operation applied (so a surprising rendering can be
    explained); ``warnings`` lists assumptions made (e.g. a missing view position).
    """

    format: ImageFormat
    rows: int
    columns: int
    photometric: str
    view_position: str | None = None
    transfer_syntax: str | None = None
    transfer_syntax_name: str | None = None
    bits_stored: int | None = None
    modality: str | None = None
    body_part: str | None = None
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (for responses and logs)."""
        return asdict(self)


@dataclass
class DecodedImage:
    """A single-frame grayscale image in the pixel contract's value convention.

    ``reduction.factor`` > 1 when the codec decoded at a reduced resolution (asked for with
    ``decode_bytes(..., min_long_side=...)``): ``pixels`` then has ``reduction.shape(rows, columns)``
    pixels, while ``info.rows`` x ``info.columns`` (``source_shape``) stay the original size that
    geometry and results are expressed in.
    """

    pixels: np.ndarray  # reduction.shape(rows, columns) float32 in [0, 1]; 0 = black (air), 1 = white
    info: ImageInfo
    reduction: Reduction = NO_REDUCTION
    #: (low, high) gray percentiles of ``pixels`` (``rendering_checks.gray_range``), kept by the
    #: decoder's blank check so the washed-out stretch does not take them again; None: not taken.
    gray_range: tuple[float, float] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the decoded pixels."""
        rows, columns = self.pixels.shape
        return int(rows), int(columns)

    @property
    def source_shape(self) -> tuple[int, int]:
        """(rows, columns) of the original image (equal to ``shape`` unless decoded reduced)."""
        return self.info.rows, self.info.columns
