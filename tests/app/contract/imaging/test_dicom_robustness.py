"""Real-world DICOM quirks: empty optional elements, palettes in both byte orders, lossy padding,
12-bit JPEG Extended, oversized sequences."""

from __future__ import annotations

import hashlib
from io import BytesIO

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

from app.contract.imaging import ImagingError, decode_bytes
from app.contract.imaging.codestream import jpegls_near
from app.contract.imaging.dicom_padding import padding_mask
from app.contract.imaging.info import ImageInfo
from app.contract.imaging.jpeg_extended import PLUGIN, ensure_registered
from tests.support.images import dicom_bytes, gradient, make_dataset

TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
SYNTAX_IDS = ["explicit", "implicit"]


def _refusal(data: bytes) -> ImagingError:
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data)
    return caught.value


def _empty_lut_item() -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", None)  # LUT Descriptor, present without a value
    item.add_new(0x00283006, "US", None)  # LUT Data, present without a value
    return item


EMPTY_OPTIONAL = {
    "pixel padding value without a value": ({"PixelPaddingValue": None}, None),
    "modality LUT item with empty descriptor and data": (
        {"ModalityLUTSequence": "empty item"},
        "Modality LUT Sequence item 1 has no LUT Descriptor and no LUT Data: ignored",
    ),
    "VOI LUT item with empty descriptor and data": (
        {"VOILUTSequence": "empty item"},
        "VOI LUT Sequence item 1 has no LUT Descriptor and no LUT Data: ignored",
    ),
    "VOI LUT item with no elements at all": (
        {"VOILUTSequence": "no elements"},
        "VOI LUT Sequence item 1 has no LUT Descriptor and no LUT Data: ignored",
    ),
}


def _with_empty(transfer_syntax: str, elements: dict[str, object]) -> bytes:
    dataset = make_dataset(gradient(maximum=1000), transfer_syntax=transfer_syntax)
    for keyword, value in elements.items():
        if value == "empty item":
            setattr(dataset, keyword, [_empty_lut_item()])
        elif value == "no elements":
            setattr(dataset, keyword, [Dataset()])
        else:
            dataset.add_new(keyword, "US", value)
    return dicom_bytes(dataset)


@pytest.mark.parametrize("transfer_syntax", TRANSFER_SYNTAXES, ids=SYNTAX_IDS)
@pytest.mark.parametrize("case", sorted(EMPTY_OPTIONAL))
def test_empty_optional_elements_count_as_absent(case: str, transfer_syntax: str) -> None:
    elements, warning = EMPTY_OPTIONAL[case]
    image = decode_bytes(_with_empty(transfer_syntax, elements))

    plain = decode_bytes(dicom_bytes(make_dataset(gradient(maximum=1000), transfer_syntax=transfer_syntax)))
    np.testing.assert_array_equal(image.pixels, plain.pixels)
    assert not any(step.startswith(("padding", "voi_lut", "modality_lut")) for step in image.info.steps)
    if warning is not None:
        assert warning in image.info.warnings


def _palette_dataset(transfer_syntax: str, tables: tuple[np.ndarray, ...]) -> bytes:
    """A palette image whose LUT data are written in the file's own byte order, as on disk."""
    order = ">" if transfer_syntax == ExplicitVRBigEndian else "<"
    dataset = make_dataset(
        gradient(dtype=np.uint8), photometric="PALETTE COLOR", transfer_syntax=transfer_syntax
    )
    for table, colour in zip(tables, ("Red", "Green", "Blue"), strict=True):
        dataset.add_new(f"{colour}PaletteColorLookupTableDescriptor", "US", [256, 0, 16])
        dataset.add_new(f"{colour}PaletteColorLookupTableData", "OW", table.astype(f"{order}u2").tobytes())
    return dicom_bytes(dataset)


_LOW_RAMP = np.arange(256, dtype=np.uint16)  # 8-bit values in 16-bit entries: a common palette
_BYTE_ORDERS = [ExplicitVRLittleEndian, ExplicitVRBigEndian]


@pytest.mark.parametrize("transfer_syntax", _BYTE_ORDERS, ids=["little-endian", "big-endian"])
def test_colour_palette_is_refused_in_both_byte_orders(transfer_syntax: str) -> None:
    """Scaled by 65535, these tables once passed the colour check as near-black gray (HTTP 200)."""
    tables = (_LOW_RAMP, _LOW_RAMP[::-1].copy(), _LOW_RAMP)
    assert _refusal(_palette_dataset(transfer_syntax, tables)).code == "unsupported_photometric"


@pytest.mark.parametrize("transfer_syntax", _BYTE_ORDERS, ids=["little-endian", "big-endian"])
def test_gray_palette_renders_its_full_range_in_both_byte_orders(transfer_syntax: str) -> None:
    image = decode_bytes(_palette_dataset(transfer_syntax, (_LOW_RAMP,) * 3))

    np.testing.assert_allclose(image.pixels, gradient(dtype=np.uint8) / 255.0, atol=1e-6)
    assert image.info.steps[0] == "palette_lut"


def test_palette_table_shorter_than_its_descriptor_is_invalid_dicom() -> None:
    short = np.arange(100, dtype=np.uint16)
    error = _refusal(_palette_dataset(ExplicitVRLittleEndian, (short, short, short)))
    assert error.code == "invalid_dicom"
    assert "Red Palette Color Lookup Table" in error.detail


def _lossy_padded(transfer_syntax: str, **options: object) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    pixels = rng.normal(2000, 400, (128, 128)).clip(0, 4000).astype(np.uint16)
    pixels[:, :40] = 4095  # the padding band outside the collimated field
    dataset = make_dataset(pixels, bits_stored=12, PixelPaddingValue=4095)
    dataset.compress(transfer_syntax, pixels, **options)
    return dicom_bytes(dataset), pixels


def test_lossy_jpeg_2000_padding_is_matched_within_a_tolerance() -> None:
    data, _ = _lossy_padded(JPEG2000, j2k_cr=[20])
    decoded = pydicom.dcmread(BytesIO(data)).pixel_array
    exact = int((decoded == 4095).sum())
    band = 128 * 40
    assert exact < band * 0.6, "precondition: lossy coding moved most padding pixels off the value"

    image = decode_bytes(data)
    black = int((image.pixels[:, :40] == 0.0).sum())
    assert black > band * 0.9
    assert any(step.endswith("(lossy, within 64)") for step in image.info.steps)


def _first_frame(data: bytes) -> bytes:
    return next(generate_frames(pydicom.dcmread(BytesIO(data)).PixelData, number_of_frames=1))


def test_jpegls_near_parameter_is_read_from_the_scan_header() -> None:
    near_lossless, _ = _lossy_padded(JPEGLSNearLossless, jls_error=3)
    lossless, _ = _lossy_padded(JPEGLSLossless)
    assert jpegls_near(_first_frame(near_lossless)) == 3
    assert jpegls_near(_first_frame(lossless)) == 0
    assert jpegls_near(b"not a codestream") is None


@pytest.mark.parametrize(
    ("transfer_syntax", "near", "expected"),
    [
        (ExplicitVRLittleEndian, None, [4095]),  # lossless: exact
        (JPEGLSNearLossless, 3, [4095, 4094, 4092]),  # the codec's own error bound
        (JPEGExtended12Bit, None, [4095, 4094, 4092, 4090, 4040]),  # 1/64 of the 12-bit range
    ],
    ids=["lossless-exact", "jpeg-ls-near", "jpeg-fraction"],
)
def test_padding_tolerance_follows_the_transfer_syntax(
    transfer_syntax: str, near: int | None, expected: list[int]
) -> None:
    decoded = np.array([[4095, 4094, 4092, 4090, 4040, 4000, 3000]], dtype=np.uint16)
    info = ImageInfo(
        format="dicom", rows=1, columns=7, photometric="MONOCHROME2", bits_stored=12,
        transfer_syntax=transfer_syntax,
    )
    mask, _ = padding_mask(Dataset(), decoded, (4095, 4095), near, info)
    assert mask is not None
    assert decoded[mask].tolist() == expected


def _twelve_bit_jpeg_dicom() -> tuple[bytes, np.ndarray]:
    y, x = np.mgrid[0:64, 0:64]
    pixels = (x * 60 + y * 4).astype(np.uint16)  # 0 .. 4032: needs all 12 bits
    dataset = make_dataset(pixels, bits_stored=12, transfer_syntax=JPEGExtended12Bit)
    dataset.PixelData = encapsulate([imagecodecs.jpeg8_encode(pixels, bitspersample=12, level=95)])
    return dicom_bytes(dataset), pixels


def test_twelve_bit_jpeg_extended_decodes() -> None:
    data, pixels = _twelve_bit_jpeg_dicom()
    image = decode_bytes(data)

    assert image.info.transfer_syntax == JPEGExtended12Bit
    np.testing.assert_allclose(image.pixels, pixels / pixels.max(), atol=2 / 4032)


def test_pydicom_twelve_bit_jpeg_matches_the_reference_decoder() -> None:
    """Stored values of pydicom's 12-bit JPEG Extended file, identical to DCMTK dcmdjpeg's output."""
    assert ensure_registered()
    dataset = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    stored, _ = get_decoder(JPEGExtended12Bit).as_array(dataset, index=0, decoding_plugin=PLUGIN)
    digest = hashlib.sha256(np.ascontiguousarray(stored, dtype="<u2").tobytes()).hexdigest()

    assert digest == "d30242775a414c01d616447854ebe3f2b20259822894bcd6891f879bcdcbf313"
    assert decode_bytes(_read("JPEG-lossy.dcm")).shape == (1024, 256)


def _read(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    with open(path, "rb") as handle:
        return handle.read()


def test_twelve_bit_jpeg_without_a_decoder_is_refused_from_the_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_decode(*_args: object) -> None:
        raise AssertionError("pixels were decoded without a 12-bit decoder")

    monkeypatch.setattr("app.contract.imaging.dicom_header.ensure_registered", lambda: False)
    monkeypatch.setattr("app.contract.imaging.decode.render_dicom", must_not_decode)
    error = _refusal(_twelve_bit_jpeg_dicom()[0])
    assert error.code == "unsupported_transfer_syntax"
    assert "12-bit JPEG Extended" in error.detail


def test_oversized_sequence_is_refused_before_pydicom_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 16])
    item.add_new(0x00283006, "US", list(range(256)))
    data = dicom_bytes(make_dataset(gradient(), VOILUTSequence=[item]))
    monkeypatch.setattr("app.contract.imaging.dicom_values.MAX_SEQUENCE_BYTES", 100)

    error = _refusal(data)
    assert error.code == "invalid_dicom"
    assert "VOILUTSequence" in error.detail
