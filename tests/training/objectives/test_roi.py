"""RoIAlign 1 x 1 against known values and a direct transcription of torchvision's algorithm."""

from __future__ import annotations

import math

import pytest
import torch

from training.objectives.roi import pixel_boxes_to_cells, roi_align_1x1


def _bilinear(plane: torch.Tensor, y: float, x: float) -> float:
    """torchvision roi_align's bilinear_interpolate (CPU kernel), one channel."""
    height, width = plane.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return float(
        hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
        + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high]
    )


def _reference(features: torch.Tensor, box: list[float]) -> torch.Tensor:
    """roi_align(features[None], [[0, *box]], (1, 1), 1.0, sampling_ratio=-1, aligned=False)."""
    x0, y0, x1, y1 = box
    roi_w, roi_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    grid_h, grid_w = math.ceil(roi_h), math.ceil(roi_w)
    out = torch.zeros(features.shape[0])
    for channel in range(features.shape[0]):
        total = 0.0
        for iy in range(grid_h):
            y = y0 + (iy + 0.5) * roi_h / grid_h
            for ix in range(grid_w):
                x = x0 + (ix + 0.5) * roi_w / grid_w
                total += _bilinear(features[channel], y, x)
        out[channel] = total / (grid_h * grid_w)
    return out


def test_constant_map_pools_to_the_constant_and_a_ramp_to_the_box_centre() -> None:
    constant = torch.full((1, 3, 7, 7), 2.5)
    boxes = torch.tensor([[[0.0, 0.0, 7.0, 7.0], [1.2, 2.3, 2.0, 2.9], [3.0, 1.0, 6.5, 5.5]]])
    assert torch.allclose(roi_align_1x1(constant, boxes), torch.full((1, 3, 3), 2.5))

    rows, columns = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ramp = (2 * columns + 3 * rows).reshape(1, 1, 8, 8)  # f(x, y) = 2x + 3y, exact under bilinear reads
    pooled = roi_align_1x1(ramp, torch.tensor([[[1.0, 1.0, 5.0, 3.0]]]))
    assert float(pooled) == pytest.approx(2 * 3.0 + 3 * 2.0)  # the box centre (3, 2)


def test_matches_torchvisions_algorithm_on_random_maps_and_boxes() -> None:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 5, 6, generator=generator)
    boxes = torch.tensor(
        [
            [[0.0, 0.0, 6.0, 5.0], [0.3, 0.4, 0.9, 0.8], [2.2, 1.1, 5.7, 4.9]],  # whole, sub-cell, inner
            [[4.5, 3.5, 6.0, 5.0], [0.0, 2.0, 3.3, 2.4], [1.0, 0.0, 1.0, 5.0]],  # corner, thin, zero width
        ]
    )
    pooled = roi_align_1x1(features, boxes)  # (2, 3, 4)
    for image in range(2):
        for region in range(3):
            expected = _reference(features[image], boxes[image, region].tolist())
            assert torch.allclose(pooled[image, region], expected, atol=1e-5), (image, region)


def test_pixel_boxes_scale_to_grid_cells() -> None:
    assert pixel_boxes_to_cells(torch.tensor([0.0, 32.0, 64.0, 16.0]), 64, 4).tolist() == [0, 2, 4, 1]
    with pytest.raises(ValueError, match="sizes"):
        pixel_boxes_to_cells(torch.zeros(4), 0, 4)
