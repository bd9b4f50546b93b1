"""Last checks on every decoded image: minimum size, finite pixels, blank renderings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import MIN_SIDE, ImagingError, decode_bytes, decode_path, preprocess
from app.contract.imaging.rendering_checks import BLANK_WARNING, GRAY_RANGE_SAMPLES, gray_range, is_blank
from tests.support.images import dicom_bytes, gradient, make_dataset, raster_bytes


def _refusal(data: bytes, **options: object) -> ImagingError:
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data, **options)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(("rows", "columns"), [(1, 1), (63, 400), (400, 63), (8, 8)])
def test_images_under_the_minimum_side_are_too_small(rows: int, columns: int) -> None:
    png = raster_bytes(np.full((rows, columns), 128, dtype=np.uint8))
    dicom = dicom_bytes(make_dataset(gradient(rows, columns)))
    for data in (png, dicom):
        error = _refusal(data)
        assert error.code == "image_too_small"
        assert f"{rows} x {columns}" in error.detail


def test_the_minimum_side_itself_is_accepted() -> None:
    image = decode_bytes(raster_bytes(np.tile(np.arange(MIN_SIDE, dtype=np.uint8), (MIN_SIDE, 1))))
    assert image.shape == (MIN_SIDE, MIN_SIDE)


def test_other_refusals_take_precedence_over_size() -> None:
    """An 8 x 8 coloured image is refused for its colour, the more useful answer."""
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert _refusal(raster_bytes(rgb)).code == "unsupported_photometric"


def test_minimum_side_is_an_option_and_files_have_none_by_default(tmp_path: Path) -> None:
    tiny = raster_bytes(np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1)))  # (8, 8)
    assert decode_bytes(tiny, min_side=0).shape == (8, 8)
    path = tmp_path / "tiny.png"
    path.write_bytes(tiny)
    assert decode_path(path).shape == (8, 8)
    with pytest.raises(ImagingError):
        decode_path(path, min_side=MIN_SIDE)


def _blank_cases() -> dict[str, bytes]:
    ramp = gradient(maximum=1000)
    return {
        "all-zero pixel data": dicom_bytes(make_dataset(np.zeros((64, 64), dtype=np.uint16))),
        "window saturating every pixel": dicom_bytes(make_dataset(ramp, WindowCenter=5000, WindowWidth=10)),
        "constant PNG": raster_bytes(np.full((64, 64), 200, dtype=np.uint8)),
    }


@pytest.mark.parametrize("case", sorted(_blank_cases()))
def test_blank_renderings_carry_a_warning(case: str) -> None:
    image = decode_bytes(_blank_cases()[case])
    assert any(warning.startswith(BLANK_WARNING) for warning in image.info.warnings)


def test_images_with_content_carry_no_blank_warning() -> None:
    dataset = make_dataset(gradient(maximum=1000), WindowCenter=500, WindowWidth=1000)
    image = decode_bytes(dicom_bytes(dataset))
    assert not any(warning.startswith(BLANK_WARNING) for warning in image.info.warnings)


def test_a_few_bright_pixels_do_not_make_a_rendering_non_blank() -> None:
    pixels = np.zeros((256, 256), dtype=np.float32)
    pixels[:2, :2] = 1.0  # a burnt-in marker on an otherwise saturated film
    assert is_blank(pixels)
    pixels[:, 128:] = 0.5
    assert not is_blank(pixels)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_preprocessing_refuses_non_finite_pixels(bad: float) -> None:
    pixels = np.full((64, 64), 0.5, dtype=np.float32)
    pixels[10, 10] = bad
    with pytest.raises(ImagingError) as caught:
        preprocess(pixels, 32)
    assert caught.value.code == "corrupt_image"


def test_preprocessed_tensor_of_a_decoded_image_is_finite() -> None:
    tensor, _ = preprocess(decode_bytes(dicom_bytes(make_dataset(gradient(maximum=1000)))).pixels, 32)
    assert np.isfinite(tensor).all()


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (2, 3), (64, 64), (100, 37), (256, 256), (300, 301), (535, 440), (1024, 1024), (2140, 1760)],
)
def test_gray_range_is_numpys_linear_percentile_on_its_sampling_grid(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    stride = max(1, int(np.ceil(np.sqrt(pixels.size / GRAY_RANGE_SAMPLES))))
    expected = np.percentile(pixels[::stride, ::stride], (0.5, 99.5))
    assert gray_range(pixels) == pytest.approx(tuple(expected), abs=1e-7)
    if pixels.size <= GRAY_RANGE_SAMPLES:  # small films: every pixel counts
        assert stride == 1
    assert pixels[::stride, ::stride].size <= 1.05 * GRAY_RANGE_SAMPLES


def test_gray_range_ignores_the_extreme_half_percent() -> None:
    pixels = np.full((200, 200), 0.5, np.float32)
    pixels[0, :50] = 0.0  # 50 of 40,000 pixels (0.125 %) black, as a burnt-in label
    pixels[1, :50] = 1.0
    assert gray_range(pixels) == (0.5, 0.5)


def test_the_decoder_records_the_gray_range_it_checked() -> None:
    image = decode_bytes(dicom_bytes(make_dataset(gradient(maximum=1000))))
    assert image.gray_range == gray_range(image.pixels)


def test_the_washed_out_stretch_reuses_the_decoders_gray_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """One decode + preprocess takes the percentiles once, and reusing them changes no pixel."""
    from app import decode_pool
    from app.contract.imaging import PreprocessingSpec, rendering_checks
    from app.contract.imaging import preprocessing as prep

    washed = (100 + gradient(300, 300, maximum=40)).astype(np.uint8)
    data = raster_bytes(washed)  # a film spanning a sliver of the gray scale: the stretch fires
    spec = PreprocessingSpec.trained(64)
    calls: list[int] = []

    def counted(pixels: np.ndarray) -> tuple[float, float]:
        calls.append(pixels.size)
        return gray_range(pixels)

    request = decode_pool.DecodeRequest(data, None, 10**8, False, None, spec)
    expected = decode_pool.decode_for_model(request)
    monkeypatch.setattr(rendering_checks, "gray_range", counted)
    monkeypatch.setattr(prep, "gray_range", counted)
    result = decode_pool.decode_for_model(request)
    assert len(calls) == 1
    assert prep.STRETCH_STEP in result.info.steps
    np.testing.assert_array_equal(result.tensor, expected.tensor)
