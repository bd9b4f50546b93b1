"""Reduced-resolution decoding of the real films in ../shared/data/dicom, against their full decode."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import NO_REDUCTION, DecodedImage, PreprocessingSpec, decode_bytes
from app.contract.imaging.reduced import J2K_THREADS_ENV

pytestmark = pytest.mark.shared_data

SPEC = PreprocessingSpec.trained(224)  # the shipped model's input: decode_long_side 448

#: file -> (reduction, step, largest and mean |difference| allowed in the model input on the [0, 1]
#: scale). Measured: J2KI 0.025 / 0.00064, J2KR 0.090 / 0.0012 (its largest differences sit on the
#: sharp edges of the lead markers; a 4 x 4 block mean of the full decode, resampled the same way,
#: already differs by 0.053 / 0.0011).
REDUCED = {
    "wg04_RG1_J2KI": (2, "reduced_decode:1/2 (JPEG 2000 resolution level 1)", 0.04, 0.001),
    "wg04_RG2_J2KR": (4, "reduced_decode:1/4 (JPEG 2000 resolution level 2)", 0.12, 0.002),
}
#: Syntaxes the codec cannot decode reduced (JPEG-LS, JPEG lossless, RLE, native), or films whose
#: rendering would change (the JPEG Baseline films have no window: min/max VOI).
FULL_SIZE = (
    "highdicom_dx_image",
    "nih_gcp_DX_nofinding",
    "siim_chest_jpeg_baseline",
    "txv_Fake_MONOHR1",
    "wg04_RG2_JLSL",
    "wg04_RG2_JPLL",
    "wg04_RG2_RLE",
)


def _decode(data: bytes, reduced: bool) -> DecodedImage:
    return decode_bytes(data, check_body_part=False, min_long_side=SPEC.decode_long_side if reduced else None)


def _model_input(data: bytes, reduced: bool) -> np.ndarray:
    image = _decode(data, reduced)
    return SPEC.apply(image.pixels, source_hw=image.source_shape, reduction=image.reduction)[0]


def _read(shared_data: Path, name: str) -> bytes:
    return (shared_data / "dicom" / f"{name}.dcm").read_bytes()


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_j2k_film_reduced_matches_its_full_decode(shared_data: Path, name: str) -> None:
    factor, step, max_diff, mean_diff = REDUCED[name]
    data = _read(shared_data, name)
    full, reduced = _decode(data, False), _decode(data, True)
    assert reduced.reduction.factor == factor and step in reduced.info.steps
    assert reduced.source_shape == full.shape

    x_full, box_full, _ = SPEC.apply(full.pixels)
    x_reduced, box, _ = SPEC.apply(
        reduced.pixels, source_hw=reduced.source_shape, reduction=reduced.reduction
    )
    assert box == box_full  # the same letterbox of the original rows x columns
    difference = np.abs(x_full - x_reduced)[0] * SPEC.std[0]  # (S, S) on the [0, 1] scale
    assert float(difference.max()) <= max_diff
    assert float(difference.mean()) <= mean_diff


@pytest.mark.parametrize("name", FULL_SIZE)
def test_other_films_are_decoded_at_full_size(shared_data: Path, name: str) -> None:
    data = _read(shared_data, name)
    asked = _decode(data, True)
    assert asked.reduction == NO_REDUCTION
    np.testing.assert_array_equal(asked.pixels, _decode(data, False).pixels)


def test_reduced_j2k_lossless_decode_is_several_times_faster(shared_data: Path) -> None:
    """Measured 9-13x (2140 x 1760 at 1/4); at least 3x, interleaved, best of 3 each."""
    data = _read(shared_data, "wg04_RG2_J2KR")
    best = {False: float("inf"), True: float("inf")}
    for _ in range(3):
        for reduced in (False, True):
            start = time.perf_counter()
            _model_input(data, reduced)
            best[reduced] = min(best[reduced], time.perf_counter() - start)
    assert best[False] >= 3.0 * best[True]


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_j2k_film_decodes_the_same_samples_on_two_threads(
    shared_data: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenJPEG's thread pool (MEDSLIP_J2K_THREADS) changes the speed of the reduced decode, never a
    sample: the code-blocks are decoded independently."""
    data = _read(shared_data, name)
    decoded = {}
    for threads in (1, 2):
        monkeypatch.setenv(J2K_THREADS_ENV, str(threads))
        decoded[threads] = _decode(data, True)
    assert decoded[1].reduction.factor == decoded[2].reduction.factor == REDUCED[name][0]
    np.testing.assert_array_equal(decoded[1].pixels, decoded[2].pixels)
