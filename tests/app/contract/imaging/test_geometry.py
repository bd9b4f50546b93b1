"""Resize and letterbox: forward geometry, and the inverse that places model-space maps on the source."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.contract.imaging import NO_REDUCTION, Letterbox, Reduction, letterbox, resize
from app.contract.imaging.geometry import _resize_float


def _centroid(weights: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted centre in pixel-edge coordinates: (x, y)."""
    rows, columns = np.indices(weights.shape)
    total = float(weights.sum())
    return float(((columns + 0.5) * weights).sum() / total), float(((rows + 0.5) * weights).sum() / total)


def test_resize_shape_dtype_and_constant_preservation() -> None:
    out = resize(np.full((30, 50), 0.25, dtype=np.float32), (7, 11))
    assert out.shape == (7, 11) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_downscale_is_antialiased() -> None:
    """A one-pixel checkerboard must average to gray, not alias into stripes or noise."""
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    out = resize(checker, (16, 16))
    np.testing.assert_allclose(out, 0.5, atol=1e-5)


def test_resize_rejects_non_2d_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        resize(np.zeros((3, 8, 8), dtype=np.float32), (4, 4))


@pytest.mark.parametrize(
    ("src_hw", "expected"),
    [
        ((300, 200), (64, 43, 10, 0)),  # tall: pad left/right
        ((200, 300), (43, 64, 0, 10)),  # wide: pad top/bottom
        ((100, 100), (64, 64, 0, 0)),
        ((10, 1000), (1, 64, 0, 31)),  # extreme aspect: at least one row
    ],
)
def test_letterbox_geometry(src_hw: tuple[int, int], expected: tuple[int, int, int, int]) -> None:
    canvas, box = letterbox(np.ones(src_hw, dtype=np.float32), 64)
    content_h, content_w, pad_x, pad_y = expected

    assert canvas.shape == (64, 64) and canvas.dtype == np.float32
    assert (box.content_h, box.content_w, box.pad_x, box.pad_y) == expected
    assert box.scale == pytest.approx(64 / max(src_hw))
    assert (box.src_h, box.src_w, box.size) == (*src_hw, 64)
    assert float(canvas.sum()) == pytest.approx(content_h * content_w, rel=1e-5)
    assert np.all(canvas[pad_y : pad_y + content_h, pad_x : pad_x + content_w] == pytest.approx(1.0))


def test_letterbox_pads_with_the_requested_value() -> None:
    canvas, _ = letterbox(np.ones((20, 10), dtype=np.float32), 20, pad_value=0.5)
    assert canvas[0, 0] == 0.5 and canvas[10, 10] == pytest.approx(1.0)


def test_point_mapping_round_trips_exactly() -> None:
    box = Letterbox.fit(437, 311, 224)
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(0, [311, 437], size=(50, 2)):
        back = box.point_to_original(*box.point_to_letterbox(x, y))
        assert back == pytest.approx((x, y), abs=1e-9)


@pytest.mark.parametrize(("src_hw", "size"), [((100, 60), 200), ((180, 300), 64)])
def test_a_bright_spot_lands_on_the_predicted_canvas_point_and_maps_back(
    src_hw: tuple[int, int], size: int
) -> None:
    """Upscaling and downscaling: the spot's centroid on the canvas maps back within 1 source pixel."""
    source = np.zeros(src_hw, dtype=np.float32)
    row, column = src_hw[0] // 3, src_hw[1] // 4
    source[row : row + 4, column : column + 4] = 1.0  # a 4x4 spot, centre at (column + 2, row + 2)
    canvas, box = letterbox(source, size)

    predicted = box.point_to_letterbox(column + 2, row + 2)
    assert _centroid(canvas) == pytest.approx(predicted, abs=0.5)
    back_x, back_y = box.point_to_original(*_centroid(canvas))
    assert abs(back_x - (column + 2)) < 1.0 and abs(back_y - (row + 2)) < 1.0


@pytest.mark.parametrize("grid", [224, 14])
def test_model_resolution_map_maps_back_to_the_source_geometry(grid: int) -> None:
    """A map over the canvas (full size or a G x G attention grid) lands on the right source pixels."""
    src_h, src_w = 300, 180
    source = np.zeros((src_h, src_w), dtype=np.float32)
    source[60:140, 100:160] = 1.0  # a bright rectangle in the upper right
    canvas, box = letterbox(source, 224)
    map_ = resize(canvas, (grid, grid)) if grid != 224 else canvas  # (grid, grid)

    restored = box.to_original(map_)  # (src_h, src_w)

    assert restored.shape == (src_h, src_w)
    assert _centroid(restored) == pytest.approx(_centroid(source), abs=1.5 if grid == 14 else 0.5)
    if grid == 224:
        assert float(np.abs(restored - source).mean()) < 0.02


def test_to_original_drops_the_padding() -> None:
    """Padding must neither be stretched into the source nor bleed into its border: a map that is 1
    exactly on the content is 1 everywhere after the inverse."""
    _, box = letterbox(np.zeros((200, 100), dtype=np.float32), 64)
    map_ = np.zeros((64, 64), dtype=np.float32)
    map_[:, box.pad_x : box.pad_x + box.content_w] = 1.0

    restored = box.to_original(map_)
    assert restored.shape == (200, 100)
    np.testing.assert_allclose(restored, 1.0, atol=1e-5)


def test_box_to_original_clips_to_the_image() -> None:
    box = Letterbox.fit(200, 100, 64)
    x0, y0, x1, y1 = box.box_to_original((0.0, 0.0, 64.0, 32.0))  # starts over the left padding
    assert (x0, y0) == (0.0, 0.0)
    assert x1 == 100.0 and y1 == pytest.approx(100.0)
    assert box.box_to_letterbox((0.0, 0.0, 100.0, 200.0)) == pytest.approx(
        (box.pad_x, 0.0, box.pad_x + box.content_w, 64.0)
    )


def test_letterbox_dict_form() -> None:
    box = Letterbox.fit(300, 200, 64)
    assert Letterbox(**box.to_dict()) == box


def test_reduction_shapes_and_source_boxes() -> None:
    assert Reduction.dct(4).shape(10, 9) == Reduction.wavelet(4).shape(10, 9) == (3, 3)
    assert Reduction.dct(4).source_box(10, 9) == (0.0, 0.0, 2.25, 2.5)  # block means: edges at f*i
    assert Reduction.wavelet(4).source_box(10, 9) == (0.375, 0.375, 2.625, 2.875)  # centred on 4*i
    assert NO_REDUCTION.source_box(10, 9) is None
    with pytest.raises(ValueError, match="invalid reduction"):
        Reduction(0)
    with pytest.raises(ValueError, match="invalid reduction"):
        Reduction(2, 2.0)


def _spot(
    rows: int, columns: int, centre_xy: tuple[float, float], at: np.ndarray | None = None
) -> np.ndarray:
    """A Gaussian spot sampled at pixel centres (pixel-edge coordinates); `at` = (ys, xs) sample grid."""
    ys, xs = at if at is not None else np.indices((rows, columns)) + 0.5
    return np.exp(-((xs - centre_xy[0]) ** 2 + (ys - centre_xy[1]) ** 2) / (2 * 12.0**2)).astype(np.float32)


@pytest.mark.parametrize("kind", ["dct", "wavelet"])
def test_reduced_pixels_land_where_the_full_image_does(kind: str) -> None:
    """Letterboxing a reduced image with its Reduction puts a spot where the full image puts it."""
    rows, columns, factor, centre = 203, 157, 4, (61.3, 97.8)
    full = _spot(rows, columns, centre)
    if kind == "dct":  # block means, the last block partial
        reduction = Reduction.dct(factor)
        padded = np.pad(full, ((0, -rows % factor), (0, -columns % factor)))
        counts = np.pad(np.ones_like(full), ((0, -rows % factor), (0, -columns % factor)))
        shape = (padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
        reduced = padded.reshape(shape).sum(axis=(1, 3)) / counts.reshape(shape).sum(axis=(1, 3))
    else:  # samples centred on every factor-th original pixel
        reduction = Reduction.wavelet(factor)
        h, w = reduction.shape(rows, columns)
        reduced = _spot(h, w, centre, at=np.indices((h, w)) * factor + 0.5)
    canvas_full, box_full = letterbox(full, 64)
    canvas, box = letterbox(reduced.astype(np.float32), 64, source_hw=(rows, columns), reduction=reduction)

    assert box == box_full
    assert _centroid(canvas) == pytest.approx(_centroid(canvas_full), abs=0.02)
    assert _centroid(canvas) == pytest.approx(box.point_to_letterbox(*centre), abs=0.05)


def test_letterbox_refuses_pixels_that_are_not_the_stated_reduction() -> None:
    with pytest.raises(ValueError, match="not a 100 x 80 image at 1/4"):
        letterbox(np.zeros((26, 20), dtype=np.float32), 64, source_hw=(100, 80), reduction=Reduction.dct(4))


@pytest.mark.parametrize("seed", range(40))
def test_small_maps_are_enlarged_with_pillows_bilinear_weights(seed: int) -> None:
    """Heat-map grids take the matrix path; it must give what Pillow's BILINEAR gives, box and all."""
    rng = np.random.default_rng(seed)
    rows, columns = (int(v) for v in rng.integers(1, 33, 2))
    source = rng.random((rows, columns)).astype(np.float32)
    x0, y0 = float(rng.random() * 0.9), float(rng.random() * 0.9)
    x1, y1 = columns - float(rng.random()) * 0.9, rows - float(rng.random()) * 0.9
    box = (x0, y0, max(x0 + 0.05, x1), max(y0 + 0.05, y1))
    size = (int(rng.integers(rows, 2600)), int(rng.integers(columns, 2600)))
    for crop in (box, None):
        pillow = Image.fromarray(source, mode="F").resize(size[::-1], Image.Resampling.BILINEAR, box=crop)
        got = _resize_float(source, size, crop)
        assert got.dtype == np.float32 and got.shape == size
        assert np.abs(got - np.asarray(pillow, dtype=np.float32)).max() < 1e-5


def test_large_sources_and_shrinking_still_go_through_pillow() -> None:
    source = np.random.default_rng(1).random((40, 50)).astype(np.float32)
    for size in ((100, 120), (20, 25)):
        pillow = Image.fromarray(source, mode="F").resize(
            size[::-1], Image.Resampling.BILINEAR if size[0] > 40 else Image.Resampling.BOX
        )
        assert np.array_equal(_resize_float(source, size), np.asarray(pillow, dtype=np.float32))
