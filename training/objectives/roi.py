"""RoIAlign with a 1 x 1 output, written with `grid_sample` (torchvision is not a dependency).

ASG pools each anatomical region from the local patch embeddings with
`torchvision.ops.roi_align(features, boxes, (1, 1), spatial_scale=1.0)` (sampling_ratio -1, aligned
False). This reproduces that call for boxes inside the map: each box is split into
ceil(height) x ceil(width) sample points at the centres of equal cells, every point is read by bilinear
interpolation (coordinates clamped to the map as torchvision clamps them, points more than one cell
outside read as 0), and the output is their mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sample_points(start: torch.Tensor, end: torch.Tensor, extent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-box sample coordinates along one axis and which of them are used.

    start, end (B, R) in feature cells -> coordinates (B, R, P) and use mask (B, R, P), where box k uses
    its first ceil(max(end - start, 1)) points and P is the largest such count of the batch.
    """
    size = (end - start).clamp(min=1.0)  # (B, R) torchvision: roi sizes are at least one cell
    count = torch.ceil(size)  # (B, R) adaptive sampling ratio for a 1 x 1 output
    points = max(int(count.max().item()) if count.numel() else 1, 1)
    points = min(points, extent + 2)  # boxes stay inside the map; this only bounds memory for bad boxes
    count = count.clamp(max=points)
    index = torch.arange(points, device=start.device, dtype=start.dtype)  # (P,)
    coords = start.unsqueeze(-1) + (index + 0.5) * (size / count).unsqueeze(-1)  # (B, R, P)
    used = index < count.unsqueeze(-1)  # (B, R, P)
    inside = (coords >= -1.0) & (coords <= float(extent))  # farther out reads as 0 in torchvision
    return coords, used & inside


def _normalised(coords: torch.Tensor, extent: int) -> torch.Tensor:
    """Cell coordinates -> grid_sample's [-1, 1] with align_corners=True (cell centres at integers)."""
    if extent == 1:
        return torch.zeros_like(coords)
    return coords * (2.0 / (extent - 1)) - 1.0


def roi_align_1x1(features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """features (B, E, H, W), boxes (B, R, 4) as (x0, y0, x1, y1) in feature cells -> pooled (B, R, E).

    A cell's centre is at integer coordinates, so a box [0, W] x [0, H] spans the whole map (torchvision
    `aligned=False` convention; pixel boxes are scaled by grid / image size before calling this).
    """
    batch, _, height, width = features.shape
    regions = boxes.shape[1]
    boxes = boxes.to(features.dtype)
    xs, x_used = _sample_points(boxes[..., 0], boxes[..., 2], width)  # (B, R, Px)
    ys, y_used = _sample_points(boxes[..., 1], boxes[..., 3], height)  # (B, R, Py)
    grid = torch.stack(
        torch.broadcast_tensors(
            _normalised(xs, width).unsqueeze(-2), _normalised(ys, height).unsqueeze(-1)
        ),
        dim=-1,
    )  # (B, R, Py, Px, 2) as (x, y)
    points_y, points_x = grid.shape[2], grid.shape[3]
    sampled = F.grid_sample(
        features,
        grid.reshape(batch, regions * points_y, points_x, 2),
        mode="bilinear",
        padding_mode="border",  # torchvision clamps coordinates inside [0, size - 1]
        align_corners=True,
    )  # (B, E, R * Py, Px)
    sampled = sampled.reshape(batch, -1, regions, points_y, points_x)  # (B, E, R, Py, Px)
    weights = (y_used.unsqueeze(-1) & x_used.unsqueeze(-2)).to(features.dtype)  # (B, R, Py, Px)
    counts = (
        torch.ceil((boxes[..., 3] - boxes[..., 1]).clamp(min=1.0)).clamp(max=points_y)
        * torch.ceil((boxes[..., 2] - boxes[..., 0]).clamp(min=1.0)).clamp(max=points_x)
    )  # (B, R) torchvision divides by the number of points, out-of-map ones included
    pooled = (sampled * weights.unsqueeze(1)).sum(dim=(-2, -1))  # (B, E, R)
    return (pooled / counts.unsqueeze(1)).transpose(1, 2)  # (B, R, E)


def pixel_boxes_to_cells(boxes: torch.Tensor, image_size: int, grid_size: int) -> torch.Tensor:
    """(..., 4) pixel boxes of an S x S image -> the same boxes in cells of its G x G patch grid."""
    if image_size <= 0 or grid_size <= 0:
        raise ValueError(f"bad sizes: image {image_size}, grid {grid_size}")
    return boxes * (grid_size / image_size)
