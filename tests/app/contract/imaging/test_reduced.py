"""Reduced-resolution decoding on synthetic films: JPEG 2000 resolution levels and JPEG DCT scaling
give the geometry of the full decode and a model input within a measured bound of it; everything
the shortcut cannot reproduce is decoded at full size."""

from __future__ import annotations

import os
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit

from app.contract.imaging import NO_REDUCTION, DecodedImage, ImagingError, PreprocessingSpec, decode_bytes
from app.contract.imaging.codestream import j2k_header
from app.contract.imaging.reduced import J2K_THREADS_ENV, j2k_level, j2k_threads, set_j2k_threads
from tests.support.images import dicom_bytes, make_dataset, phantom, raster_bytes

imagecodecs = pytest.importorskip("imagecodecs", reason="imagecodecs (serve extras) encodes the J2K fixtures")

SPEC = PreprocessingSpec.trained(112)  # decode_long_side 224: a 1000-pixel film is decoded at 1/4
#: Largest and mean |difference| of the 112 px model input (on the [0, 1] scale, before normalisation)
#: between reduced and full decoding, measured on these 1000 x 800 phantoms (the saturated marker's
#: sharp edges are the worst case): J2K lossless 0.216 / 0.0029, J2K lossy 0.163 / 0.0027, JPEG
#: 0.186 / 0.0021 (the JPEG's reduced pixels are its block means to 0.75 gray levels: the rest is the
#: second resampling). Placing the J2K samples as block means instead raises the means to 0.0046.
MAX_DIFF, MEAN_DIFF = 0.25, 0.0035


def _j2k(pixels: np.ndarray, *, lossy: bool = False, **options: Any) -> bytes:
    lossy_options: dict[str, Any] = {"level": 30, "reversible": False} if lossy else {}
    return bytes(imagecodecs.jpeg2k_encode(pixels, codecformat="J2K", **lossy_options, **options))


def _j2k_dicom(
    pixels: np.ndarray, *, lossy: bool = False, window: bool = True, bits: int = 12, **elements: Any
) -> bytes:
    """A ``bits``-bit JPEG 2000 film; with its window in the header unless ``window`` is False."""
    if window:
        elements = {"WindowCenter": 2 ** (bits - 1), "WindowWidth": 2**bits, **elements}
    dataset = make_dataset(
        pixels, bits_stored=bits, transfer_syntax=JPEG2000 if lossy else JPEG2000Lossless, **elements
    )
    dataset.PixelData = encapsulate([_j2k(pixels, lossy=lossy, bitspersample=bits)])
    return dicom_bytes(dataset)


def _inputs(full: DecodedImage, reduced: DecodedImage) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of both decodes on the [0, 1] scale; asserts their letterboxes are identical."""
    x_full, box_full, _ = SPEC.apply(full.pixels)
    x_reduced, box_reduced, _ = SPEC.apply(
        reduced.pixels, source_hw=reduced.source_shape, reduction=reduced.reduction
    )
    assert box_reduced == box_full
    std = np.float32(SPEC.std[0])
    return x_full[0] * std, x_reduced[0] * std  # (S, S) each


def _assert_parity(data: bytes, factor: int, step: str) -> DecodedImage:
    full = decode_bytes(data)
    reduced = decode_bytes(data, min_long_side=SPEC.decode_long_side)
    assert full.reduction == NO_REDUCTION
    assert reduced.reduction.factor == factor and step in reduced.info.steps
    assert reduced.source_shape == full.shape == (full.info.rows, full.info.columns)
    assert reduced.shape == reduced.reduction.shape(*full.shape)
    x_full, x_reduced = _inputs(full, reduced)
    difference = np.abs(x_full - x_reduced)
    assert float(difference.max()) <= MAX_DIFF
    assert float(difference.mean()) <= MEAN_DIFF
    return reduced


@pytest.mark.parametrize(
    ("rows", "columns", "min_long_side", "levels", "expected"),
    [
        (2140, 1760, 448, 5, 2),  # 535 x 440
        (4096, 4096, 448, 5, 3),  # 512 x 512; 1/16 would be 256
        (2140, 1760, 448, 1, 1),  # the codestream has one decomposition level only
        (1955, 1841, 448, 5, 1),  # 1841 / 4: Pillow sizes 460, OpenJPEG writes 461 -> next finer level
        (400, 300, 448, 5, 0),  # already small: full size
        (2140, 1760, 448, 0, 0),
    ],
)
def test_j2k_level(rows: int, columns: int, min_long_side: int, levels: int, expected: int) -> None:
    assert j2k_level(rows, columns, min_long_side, levels) == expected


def test_j2k_header_reads_precision_sign_and_levels() -> None:
    unsigned = j2k_header(_j2k(phantom(96, 80), bitspersample=12, resolutions=4))
    signed = j2k_header(_j2k(phantom(96, 80).astype(np.int16) - 2048, resolutions=3))
    assert unsigned is not None and signed is not None
    assert (unsigned.rows, unsigned.columns, unsigned.components) == (96, 80, 1)
    assert (unsigned.precision, unsigned.signed, unsigned.levels) == (12, False, 3)
    assert (signed.precision, signed.signed, signed.levels) == (16, True, 2)
    assert j2k_header(b"\xff\x4f\xff\x51 truncated") is None


@pytest.mark.parametrize("lossy", [False, True], ids=["lossless", "lossy"])
def test_j2k_film_is_decoded_reduced_with_the_original_geometry(lossy: bool) -> None:
    data = _j2k_dicom(phantom(1000, 800), lossy=lossy)
    reduced = _assert_parity(data, 4, "reduced_decode:1/4 (JPEG 2000 resolution level 2)")
    assert reduced.shape == (250, 200)
    _, box, _ = SPEC.apply(reduced.pixels, source_hw=reduced.source_shape, reduction=reduced.reduction)
    assert box.to_original(np.ones((7, 7), dtype=np.float32)).shape == (1000, 800)


@pytest.mark.parametrize(("bits", "maximum"), [(6, 63), (8, 255), (15, 32767)])
def test_j2k_sample_values_are_the_codestream_s_own(bits: int, maximum: int) -> None:
    """Pillow scales samples to 8 or 16 bits; the reduced decode restores the stored values, to
    within about one stored level (the codec's integer low-pass rounding) plus what averaging moves
    the mean of this film (measured mean brightness shift: 0.0123 at 6 bits = 0.78 level, 0.0036 at
    8 bits = 0.9 level, 0.0003 at 15 bits)."""
    data = _j2k_dicom(phantom(1000, 800, maximum=maximum), bits=bits)
    full, reduced = _full_and_reduced(data)
    assert reduced.reduction.factor == 4
    level = 1.0 / maximum
    assert abs(float(full.pixels.mean()) - float(reduced.pixels.mean())) <= level + 0.0005
    x_full, x_reduced = _inputs(full, reduced)
    assert float(np.abs(x_full - x_reduced).mean()) <= MEAN_DIFF + level


def test_j2k_level_is_lowered_where_pillow_would_size_the_image_wrongly() -> None:
    data = _j2k_dicom(phantom(1000, 801))  # 801 / 4 = 200.25: Pillow 200, OpenJPEG 201
    _assert_parity(data, 2, "reduced_decode:1/2 (JPEG 2000 resolution level 1)")


def test_jpeg_upload_is_decoded_reduced_with_the_original_geometry() -> None:
    data = raster_bytes(phantom(1000, 800, maximum=255), "JPEG", quality=90)
    reduced = _assert_parity(data, 4, "reduced_decode:1/4 (JPEG DCT scaling)")
    assert (reduced.info.rows, reduced.info.columns) == (1000, 800)


def test_jpeg_baseline_dicom_with_a_window_is_decoded_reduced() -> None:
    pixels = phantom(1000, 800, maximum=255)
    dataset = make_dataset(pixels, transfer_syntax=JPEGBaseline8Bit, WindowCenter=128, WindowWidth=256)
    dataset.PixelData = encapsulate([raster_bytes(pixels, "JPEG", quality=90)])
    _assert_parity(dicom_bytes(dataset), 4, "reduced_decode:1/4 (JPEG DCT scaling)")


def test_rotated_jpeg_keeps_its_upright_original_size_when_reduced() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = BytesIO()
    Image.fromarray(phantom(1000, 700, maximum=255)).save(buffer, format="JPEG", exif=exif)
    full = decode_bytes(buffer.getvalue())
    reduced = decode_bytes(buffer.getvalue(), min_long_side=SPEC.decode_long_side)
    assert reduced.source_shape == full.shape == (700, 1000)
    assert reduced.shape == (175, 250) and reduced.reduction.factor == 4
    x_full, x_reduced = _inputs(full, reduced)
    assert float(np.abs(x_full - x_reduced).mean()) <= MEAN_DIFF


def _full_and_reduced(data: bytes) -> tuple[DecodedImage, DecodedImage]:
    return decode_bytes(data), decode_bytes(data, min_long_side=SPEC.decode_long_side)


def _assert_full_size(data: bytes) -> None:
    full, asked = _full_and_reduced(data)
    assert asked.reduction == NO_REDUCTION
    assert not any(step.startswith("reduced_decode") for step in asked.info.steps)
    np.testing.assert_array_equal(asked.pixels, full.pixels)


def test_film_without_a_window_is_decoded_at_full_size() -> None:
    """The min/max VOI of a reduced film would be narrower (averaging removes the extremes)."""
    _assert_full_size(_j2k_dicom(phantom(1000, 800), window=False))


def test_jpeg_baseline_dicom_without_a_window_is_decoded_at_full_size() -> None:
    pixels = phantom(1000, 800, maximum=255)
    dataset = make_dataset(pixels, transfer_syntax=JPEGBaseline8Bit)
    dataset.PixelData = encapsulate([raster_bytes(pixels, "JPEG", quality=90)])
    _assert_full_size(dicom_bytes(dataset))


def test_signed_j2k_film_is_decoded_at_full_size() -> None:
    pixels = phantom(1000, 800).astype(np.int16) - 2048
    dataset = make_dataset(pixels, transfer_syntax=JPEG2000Lossless, WindowCenter=0, WindowWidth=4096)
    dataset.PixelData = encapsulate([_j2k(pixels)])
    _assert_full_size(dicom_bytes(dataset))


def test_png_is_decoded_at_full_size() -> None:
    _assert_full_size(raster_bytes(phantom(1000, 800, maximum=255), "PNG"))


def test_colour_jpeg_is_decoded_at_full_size() -> None:
    """Whether the channels agree is judged per pixel: averaging could hide a thin coloured overlay."""
    gray = phantom(1000, 800, maximum=255)
    _assert_full_size(raster_bytes(np.stack([gray, gray, gray], axis=-1), "JPEG", quality=95))


def test_a_codec_failure_at_reduced_size_falls_back_to_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _j2k_dicom(phantom(1000, 800))

    def broken_open(*_args: Any, **_kwargs: Any) -> Image.Image:
        raise OSError("broken data stream")

    monkeypatch.setattr("app.contract.imaging.reduced.Image.open", broken_open)
    _assert_full_size(data)


def test_minimum_size_is_judged_on_the_original_film() -> None:
    long_thin = raster_bytes(phantom(70, 2000, maximum=255), "JPEG")
    reduced = decode_bytes(long_thin, min_long_side=SPEC.decode_long_side)
    assert reduced.source_shape == (70, 2000) and reduced.shape == (9, 250)
    too_thin = raster_bytes(phantom(60, 2000, maximum=255), "JPEG")
    with pytest.raises(ImagingError) as caught:
        decode_bytes(too_thin, min_long_side=SPEC.decode_long_side)
    assert caught.value.code == "image_too_small"


def test_j2k_threads_zero_means_one_per_usable_cpu() -> None:
    assert j2k_threads(0) == len(os.sched_getaffinity(0))
    assert j2k_threads(3) == 3
    with pytest.raises(ValueError, match=">= 0"):
        j2k_threads(-1)


def test_set_j2k_threads_sizes_openjpeg_through_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(J2K_THREADS_ENV, raising=False)  # restored after the test
    assert set_j2k_threads(2) == 2
    assert os.environ[J2K_THREADS_ENV] == "2"
    assert set_j2k_threads(0) == len(os.sched_getaffinity(0))
    assert os.environ[J2K_THREADS_ENV] == str(len(os.sched_getaffinity(0)))
