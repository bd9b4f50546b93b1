"""Every DICOM refusal: the right stable code, decided from the header where possible, no patient data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from app.contract.imaging import ImagingError, check_dicom_header, decode_bytes
from tests.support.images import (
    IDENTIFYING_VALUES,
    dicom_bytes,
    gradient,
    make_dataset,
    with_text_value,
)

# Some fixtures are deliberately non-conformant (lower-case code strings, bad UIDs, cut files).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR:UserWarning", "ignore:End of file reached before delimiter:UserWarning"
)


def _refusal(data: bytes, **options: object) -> ImagingError:
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data, **options)  # type: ignore[arg-type]
    return caught.value


def _without_pixels() -> Dataset:
    """A non-image object (like an SR): identity and UIDs, but no image module at all."""
    dataset = make_dataset(gradient())
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit"):
        delattr(dataset, keyword)
    return dataset


def _colour_rgb() -> Dataset:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    rgb[..., 2] = np.arange(16, dtype=np.uint8) * 10
    return make_dataset(rgb, photometric="RGB")


def _truncated() -> bytes:
    data = dicom_bytes(make_dataset(gradient(64, 64)))
    return data[: len(data) - 4000]


def test_float_pixel_data_is_not_an_image_not_corrupt() -> None:
    error = _refusal(dicom_bytes(_float_pixel_data()))
    assert error.code == "not_an_image"
    assert "float" in error.detail


def test_file_cut_before_its_pixel_data_is_corrupt_not_a_non_image() -> None:
    data = dicom_bytes(make_dataset(gradient(64, 64)))
    cut = data.index(b"\xe0\x7f\x10\x00")  # the (7FE0,0010) Pixel Data tag
    assert _refusal(data[:cut]).code == "corrupt_image"


def _huge_header() -> Dataset:
    dataset = make_dataset(gradient())
    dataset.Rows, dataset.Columns = 60_000, 60_000  # 3.6e9 pixels declared, 512 bytes present
    return dataset


def _private_transfer_syntax() -> Dataset:
    return make_dataset(gradient(), transfer_syntax="1.2.826.0.1.3680043.8.498.99")  # a private UID


def _float_pixel_data() -> Dataset:
    """A parametric map: Float Pixel Data instead of Pixel Data, Rows and Columns present."""
    dataset = make_dataset(gradient())
    dataset.FloatPixelData = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).tobytes()
    del dataset.PixelData
    dataset.BitsAllocated = dataset.BitsStored = 32
    return dataset


REFUSALS = {
    "multi_frame": lambda: dicom_bytes(make_dataset(gradient(), NumberOfFrames=2)),
    "image_too_small": lambda: dicom_bytes(make_dataset(gradient(16, 200))),
    "not_an_image": lambda: dicom_bytes(_without_pixels()),
    "unsupported_photometric": lambda: dicom_bytes(_colour_rgb()),
    "corrupt_image": _truncated,
    "image_too_large": lambda: dicom_bytes(_huge_header()),
    "unsupported_view": lambda: dicom_bytes(make_dataset(gradient(), ViewPosition="LL")),
    "not_chest": lambda: dicom_bytes(make_dataset(gradient(), BodyPartExamined="KNEE")),
    "unsupported_transfer_syntax": lambda: dicom_bytes(_private_transfer_syntax()),
    "invalid_dicom": lambda: b"\x00" * 128 + b"DICM" + b"\xff" * 64,
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_refusal_code(code: str) -> None:
    assert _refusal(REFUSALS[code]()).code == code


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_refusals_never_leak_patient_data(code: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    error = _refusal(REFUSALS[code]())

    exposed = " ".join([str(error), error.detail, repr(error.args), caplog.text])
    for value in IDENTIFYING_VALUES:
        assert value not in exposed


def test_oversized_header_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pixels were decoded for an oversized image")

    monkeypatch.setattr("app.contract.imaging.decode.render_dicom", must_not_decode)
    error = _refusal(dicom_bytes(make_dataset(gradient(), Rows=5000, Columns=5000)), max_pixels=1_000_000)
    assert error.code == "image_too_large"


@pytest.mark.parametrize("view", ["LL", "RL", "LATERAL", "LAT", "lat"])
def test_lateral_views_refused_unless_allowed(view: str) -> None:
    data = dicom_bytes(make_dataset(gradient(), ViewPosition=view))
    assert _refusal(data).code == "unsupported_view"

    image = decode_bytes(data, allow_lateral=True)
    assert image.info.view_position == view.upper()
    assert any("lateral view" in warning for warning in image.info.warnings)


def test_lateral_view_from_view_code_sequence() -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10236", "SRT", "left lateral"
    dataset = make_dataset(gradient(), ViewCodeSequence=[code])
    del dataset.ViewPosition
    assert _refusal(dicom_bytes(dataset)).code == "unsupported_view"


@pytest.mark.parametrize("view", ["PA", "AP", "LLD"])
def test_frontal_and_decubitus_views_accepted(view: str) -> None:
    image = decode_bytes(dicom_bytes(make_dataset(gradient(), ViewPosition=view)))
    assert image.info.view_position == view


@pytest.mark.parametrize(
    "body_part", ["HIP", "PELVIS", "KNEE", "HAND", "SKULL", "L HAND", "LSPINE", "THORACIC SPINE"]
)
def test_non_chest_body_parts_refused(body_part: str) -> None:
    data = dicom_bytes(make_dataset(gradient(), BodyPartExamined=body_part))
    assert _refusal(data).code == "not_chest"
    assert decode_bytes(data, check_body_part=False).info.body_part == body_part


@pytest.mark.parametrize("body_part", ["CHEST", "THORAX", "", "PORTABLE", "CHEST ABDOMEN"])
def test_chest_empty_and_unknown_body_parts_accepted(body_part: str) -> None:
    image = decode_bytes(dicom_bytes(make_dataset(gradient(), BodyPartExamined=body_part)))
    assert image.pixels.shape == (64, 64)


def test_missing_decoder_is_unsupported_transfer_syntax() -> None:
    """A known syntax whose pixels nobody here decodes (MPEG2 video) is named, not crashed on."""
    dataset = make_dataset(gradient(), transfer_syntax="1.2.840.10008.1.2.4.100")
    error = _refusal(dicom_bytes(dataset))
    assert error.code == "unsupported_transfer_syntax"
    assert "MPEG2" in error.detail


def test_damaged_compressed_stream_is_corrupt_image() -> None:
    dataset = make_dataset(gradient(dtype=np.uint8), transfer_syntax=JPEGBaseline8Bit)
    dataset.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not a JPEG stream"])
    assert _refusal(dicom_bytes(dataset)).code == "corrupt_image"


def test_declared_dicom_that_is_garbage_is_invalid_dicom() -> None:
    assert _refusal(b"hello world" * 30, media_type="application/dicom").code == "invalid_dicom"


def test_undeclared_garbage_is_unsupported_media_type() -> None:
    assert _refusal(b"hello world" * 30).code == "unsupported_media_type"


def _header_only(dataset: Dataset) -> Dataset:
    return dcmread(BytesIO(dicom_bytes(dataset)), stop_before_pixels=True)


def test_check_dicom_header_vets_a_header_read_without_pixels() -> None:
    """The bridge vets objects at C-STORE time with stop_before_pixels, never decoding them."""
    info = check_dicom_header(
        _header_only(make_dataset(gradient(), ViewPosition="AP")), pixel_data_read=False
    )
    assert (info.rows, info.columns, info.view_position) == (64, 64, "AP")
    assert info.steps == []
    for elements, code in (
        ({"BodyPartExamined": "PELVIS"}, "not_chest"),
        ({"ViewPosition": "LL"}, "unsupported_view"),
        ({"NumberOfFrames": 3}, "multi_frame"),
    ):
        with pytest.raises(ImagingError) as caught:
            check_dicom_header(_header_only(make_dataset(gradient(), **elements)), pixel_data_read=False)
        assert caught.value.code == code


def test_check_dicom_header_expects_pixels_by_default() -> None:
    with pytest.raises(ImagingError) as caught:
        check_dicom_header(_header_only(make_dataset(gradient())))
    assert caught.value.code == "corrupt_image"


def _lut_item(descriptor: list[int] | None, data: list[int] | None) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor
    item.add_new(0x00283006, "US", data)  # LUT Data
    return item


def _with_value(keyword: str, vr: str, value: object) -> Callable[[str], bytes]:
    def build(transfer_syntax: str) -> bytes:
        dataset = make_dataset(gradient(maximum=4000), transfer_syntax=transfer_syntax)
        if keyword.startswith("Window"):
            dataset.WindowCenter, dataset.WindowWidth = 2000, 4000
        dataset.add_new(keyword, vr, value)
        return dicom_bytes(dataset)

    return build


def _with_text(keyword: str, text: str) -> Callable[[str], bytes]:
    return lambda transfer_syntax: with_text_value(
        make_dataset(gradient(maximum=4000), bits_stored=12, transfer_syntax=transfer_syntax), keyword, text
    )


def _with_sequence(keyword: str, item: Dataset) -> Callable[[str], bytes]:
    def build(transfer_syntax: str) -> bytes:
        dataset = make_dataset(gradient(maximum=255), transfer_syntax=transfer_syntax)
        setattr(dataset, keyword, [item])
        return dicom_bytes(dataset)

    return build


# Hand-broken headers: (builder by transfer syntax, the attribute the refusal must name, the value
# that must never appear in it). Each of these crashed the decoder (HTTP 500) or rendered NaN.
BROKEN_HEADERS: dict[str, tuple[Callable[[str], bytes], str, str]] = {
    "samples per pixel as text": (_with_text("SamplesPerPixel", "one"), "SamplesPerPixel", "one"),
    "bits stored as text": (_with_text("BitsStored", "twelve"), "BitsStored", "twelve"),
    "rescale slope as text": (_with_text("RescaleSlope", "steep"), "RescaleSlope", "steep"),
    "rescale intercept as text": (_with_text("RescaleIntercept", "offset"), "RescaleIntercept", "offset"),
    "rescale slope NaN": (_with_value("RescaleSlope", "DS", "NaN"), "RescaleSlope", "nan"),
    "rescale slope 1e999": (_with_value("RescaleSlope", "DS", "1e999"), "RescaleSlope", "inf"),
    "rescale intercept NaN": (_with_value("RescaleIntercept", "DS", "NaN"), "RescaleIntercept", "nan"),
    "window center NaN": (_with_value("WindowCenter", "DS", "NaN"), "WindowCenter", "nan"),
    "window width -inf": (_with_value("WindowWidth", "DS", "-1e999"), "WindowWidth", "inf"),
    "VOI LUT shorter than its descriptor": (
        _with_sequence("VOILUTSequence", _lut_item([4096, 0, 12], list(range(100)))),
        "VOI LUT",
        "4096 entries from",
    ),
    "modality LUT with 0 entries": (
        _with_sequence("ModalityLUTSequence", _lut_item([0, 0, 16], None)),
        "Modality LUT",
        "65535",
    ),
    "modality LUT shorter than 2^16 entries": (
        _with_sequence("ModalityLUTSequence", _lut_item([0, 0, 16], [1, 2, 3])),
        "Modality LUT",
        "[1, 2, 3]",
    ),
    "VOI LUT with an invalid bit depth": (
        _with_sequence("VOILUTSequence", _lut_item([256, 0, 40], list(range(256)))),
        "VOI LUT",
        "40",
    ),
}
TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


@pytest.mark.parametrize("transfer_syntax", TRANSFER_SYNTAXES, ids=["explicit", "implicit"])
@pytest.mark.parametrize("case", sorted(BROKEN_HEADERS))
def test_broken_header_values_are_invalid_dicom_naming_the_attribute(
    case: str, transfer_syntax: str, caplog: pytest.LogCaptureFixture
) -> None:
    build, attribute, value = BROKEN_HEADERS[case]
    caplog.set_level(logging.DEBUG)
    error = _refusal(build(transfer_syntax))

    assert error.code == "invalid_dicom"
    assert attribute in error.detail
    assert value not in error.detail.lower()
    for identifying in IDENTIFYING_VALUES:
        assert identifying not in error.detail and identifying not in caplog.text


@pytest.mark.parametrize("case", sorted(BROKEN_HEADERS))
def test_broken_header_values_are_refused_by_the_header_check_alone(case: str) -> None:
    """The bridge vets objects without decoding: the same refusal comes from the header."""
    build, _, _ = BROKEN_HEADERS[case]
    with pytest.raises(ImagingError) as caught:
        check_dicom_header(_header_only_bytes(build(ExplicitVRLittleEndian)), pixel_data_read=False)
    assert caught.value.code == "invalid_dicom"


def _header_only_bytes(data: bytes) -> Dataset:
    return dcmread(BytesIO(data), stop_before_pixels=True)
