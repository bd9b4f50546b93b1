"""The grayscale pipeline on tiny synthetic datasets: each step's effect and its order."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from app.contract.imaging import decode_bytes
from tests.support.images import dicom_bytes, gradient, make_dataset

# Some fixtures are deliberately non-conformant (lower-case code strings, bad UIDs, cut files).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR:UserWarning", "ignore:End of file reached before delimiter:UserWarning"
)


def test_min_max_window_when_header_has_no_voi() -> None:
    image = decode_bytes(dicom_bytes(make_dataset(gradient(maximum=1000), bits_stored=12)))

    np.testing.assert_allclose(image.pixels[0], np.linspace(0.0, 1.0, 64), atol=1e-3)
    assert image.info.steps == [
        "bits_stored_mask:12/16",
        "window:min-max=0..1000 (no VOI in header)",
        "scale:float32[0,1]",
    ]


def test_bits_above_bits_stored_are_masked() -> None:
    """Overlay bits or garbage above BitsStored must not reach the pixel values."""
    stored = gradient(maximum=4095)  # 12-bit values
    dirty = stored | np.uint16(0xF000)  # set the 4 unused high bits
    clean_image = decode_bytes(dicom_bytes(make_dataset(stored, bits_stored=12)))
    dirty_image = decode_bytes(dicom_bytes(make_dataset(dirty, bits_stored=12)))

    np.testing.assert_array_equal(clean_image.pixels, dirty_image.pixels)


def test_rescale_is_applied_before_the_window() -> None:
    """Window centre/width are in modality units (after rescale), as DICOM defines them."""
    dataset = make_dataset(
        gradient(maximum=2000),
        RescaleSlope=2,
        RescaleIntercept=-1000,  # modality values -1000 .. 3000
        WindowCenter=1000,
        WindowWidth=4001,
        VOILUTFunction="LINEAR",
    )
    image = decode_bytes(dicom_bytes(dataset))

    np.testing.assert_allclose(image.pixels[0], np.linspace(0.0, 1.0, 64), atol=2e-3)
    assert image.info.steps[:2] == [
        "rescale:slope=2,intercept=-1000",
        "window:center=1000,width=4001,function=LINEAR",
    ]


def test_window_clips_outside_values_and_uses_the_first_of_several() -> None:
    steps = np.repeat(np.arange(0, 160, 10, dtype=np.uint16), 4)  # 0, 0, 0, 0, 10, ... 150: 64 columns
    dataset = make_dataset(np.tile(steps, (64, 1)), WindowCenter=[50, 500], WindowWidth=[21, 1000])
    image = decode_bytes(dicom_bytes(dataset))

    row = image.pixels[0, ::4]  # values 0, 10, 20, ... 150
    assert row[0] == 0.0 and row[3] == 0.0  # 0, 30 below the window [40, 60]
    assert row[5] == pytest.approx(0.5, abs=0.03)  # 50 is the centre
    assert row[7] == 1.0 and row[-1] == 1.0  # 70 and above
    assert "window:center=50,width=21,function=LINEAR (first of 2)" in image.info.steps


@pytest.mark.parametrize(
    ("function", "at_center"),
    [("LINEAR_EXACT", 0.5), ("SIGMOID", 0.5)],
)
def test_voi_lut_functions(function: str, at_center: float) -> None:
    pixels = np.full((64, 64), 100, dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0, 200
    dataset = make_dataset(pixels, WindowCenter=100, WindowWidth=50, VOILUTFunction=function)
    image = decode_bytes(dicom_bytes(dataset))

    assert image.pixels[1, 1] == pytest.approx(at_center, abs=1e-6)
    assert image.pixels[0, 0] < 0.01 and image.pixels[0, 1] > 0.99


def test_voi_lut_sequence_wins_over_window_and_is_scaled_by_its_range() -> None:
    """A LUT whose descriptor says 16 bits but whose entries stop at 4095 still reaches white."""
    pixels = gradient(maximum=255)
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 16])  # LUT Descriptor: 256 entries from 0, "16 bits"
    item.add_new(0x00283006, "US", [min(4095, v * 16) for v in range(256)][::-1])  # decreasing: inverts
    dataset = make_dataset(pixels, WindowCenter=10, WindowWidth=5, VOILUTSequence=[item])
    image = decode_bytes(dicom_bytes(dataset))

    assert image.pixels[0, 0] == pytest.approx(1.0)
    assert image.pixels[0, -1] == pytest.approx(0.0)
    assert "voi_lut:sequence item 1 of 1" in image.info.steps
    assert not any(step.startswith("window:") for step in image.info.steps)


def test_monochrome1_is_inverted_over_the_output_range() -> None:
    pixels = gradient(maximum=1000)
    mono2 = decode_bytes(dicom_bytes(make_dataset(pixels, WindowCenter=500, WindowWidth=1001)))
    mono1 = decode_bytes(
        dicom_bytes(make_dataset(pixels, photometric="MONOCHROME1", WindowCenter=500, WindowWidth=1001))
    )

    np.testing.assert_allclose(mono1.pixels, 1.0 - mono2.pixels, atol=1e-6)
    assert mono1.info.steps.index("invert:MONOCHROME1") > 0


def test_padding_is_black_after_inversion_and_excluded_from_min_max() -> None:
    """Padding outside the collimated field must not stretch the window nor turn white on inversion."""
    pixels = gradient(maximum=1000)
    pixels[:, :4] = 4000  # padding value, far above the body values
    dataset = make_dataset(pixels, photometric="MONOCHROME1", bits_stored=12, PixelPaddingValue=4000)
    image = decode_bytes(dicom_bytes(dataset))

    assert np.all(image.pixels[:, :4] == 0.0)
    body = image.pixels[:, 4:]
    assert float(body.max()) == pytest.approx(1.0, abs=1e-6)  # min of body -> white after inversion
    assert float(body.min()) == pytest.approx(0.0, abs=1e-6)  # 1000 (not 4000) is the window top
    steps = image.info.steps
    assert steps.index("invert:MONOCHROME1") < steps.index("padding_to_black:256 px")


def test_padding_range_limit() -> None:
    pixels = gradient(maximum=1000)
    pixels[0, :] = [0, 1, 2, 3] * 16  # values 0..3 are padding via the range
    pixels[1:, :] += 100
    dataset = make_dataset(pixels, PixelPaddingValue=0, PixelPaddingRangeLimit=3)
    image = decode_bytes(dicom_bytes(dataset))

    assert np.all(image.pixels[0] == 0.0)
    assert "padding_to_black:64 px" in image.info.steps


def test_signed_pixels_with_rescale() -> None:
    pixels = np.linspace(-1024, 1023, 4096).round().astype(np.int16).reshape(64, 64)
    dataset = make_dataset(pixels, bits_stored=12, RescaleSlope=1, RescaleIntercept=0)
    image = decode_bytes(dicom_bytes(dataset))

    assert image.pixels.flat[0] == 0.0 and image.pixels.flat[-1] == 1.0
    assert np.all(np.diff(image.pixels.ravel()) >= 0)


@pytest.mark.parametrize(
    "transfer_syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian],
    ids=lambda uid: uid.name,
)
def test_uncompressed_transfer_syntaxes_decode_identically(transfer_syntax: str) -> None:
    pixels = gradient(maximum=4000)
    image = decode_bytes(dicom_bytes(make_dataset(pixels, bits_stored=12, transfer_syntax=transfer_syntax)))

    np.testing.assert_allclose(image.pixels[0], np.linspace(0.0, 1.0, 64), atol=1e-3)
    assert image.info.transfer_syntax == transfer_syntax


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_file_without_preamble_is_sniffed_and_decoded(transfer_syntax: str) -> None:
    data = dicom_bytes(make_dataset(gradient(), transfer_syntax=transfer_syntax), preamble=False)
    assert data[128:132] != b"DICM"

    for media_type in (None, "application/dicom"):
        image = decode_bytes(data, media_type)
        assert image.info.format == "dicom"
        assert image.info.transfer_syntax == transfer_syntax
        assert "DICOM file without preamble (read as a bare dataset)" in image.info.warnings
        np.testing.assert_allclose(image.pixels[0], gradient()[0] / 255.0, atol=1e-6)


def test_rgb_dicom_that_is_gray_is_accepted() -> None:
    gray = gradient(dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)  # (H, W, 3)
    image = decode_bytes(dicom_bytes(make_dataset(rgb, photometric="RGB")))

    np.testing.assert_allclose(image.pixels, gray / 255.0, atol=1e-6)
    assert "colour_to_gray:channels agree" in image.info.steps


def test_header_facts_and_missing_view_warning() -> None:
    dataset = make_dataset(gradient(), ViewPosition="", Modality="CR", BodyPartExamined="thorax")
    image = decode_bytes(dicom_bytes(dataset))

    assert image.info.view_position is None
    assert "no view position in header: assumed frontal" in image.info.warnings
    assert image.info.modality == "CR"
    assert image.info.body_part == "THORAX"
    assert image.info.transfer_syntax_name == "Explicit VR Little Endian"


def test_modality_lut_sequence_is_applied() -> None:
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 16])  # LUT Descriptor
    item.ModalityLUTType = "OD"
    item.add_new(0x00283006, "US", [(255 - v) * 10 for v in range(256)])  # reverses the ramp
    image = decode_bytes(dicom_bytes(make_dataset(gradient(maximum=255), ModalityLUTSequence=[item])))

    assert image.pixels[0, 0] == pytest.approx(1.0) and image.pixels[0, -1] == pytest.approx(0.0)
    assert image.info.steps[0] == "modality_lut:sequence"
